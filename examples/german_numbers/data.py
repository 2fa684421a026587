"""German number words as model input: character ids, lengths, and the number itself."""

from __future__ import annotations

import numpy as np
import tensorflow.compat.v1 as tf

from words import LARGEST, german

ALPHABET = "abcdefghijklmnopqrstuvwxyzäöüß"
MAX_LENGTH = 65  # the longest word, german(727_727), has 65 letters
CHAR_IDS = {c: i + 1 for i, c in enumerate(ALPHABET)}  # 0 pads
VOCABULARY = len(ALPHABET) + 1


def encode(words):
    """Words -> ``{'chars': int32 (n, MAX_LENGTH), 'length': int32 (n,)}`` (zero-padded)."""
    chars = np.zeros((len(words), MAX_LENGTH), np.int32)
    for row, word in enumerate(words):
        if len(word) > MAX_LENGTH or set(word) - set(ALPHABET):
            raise ValueError(f"{word!r} is not a German number word of at most {MAX_LENGTH} letters")
        chars[row, :len(word)] = [CHAR_IDS[c] for c in word]
    return {"chars": chars, "length": np.array([len(w) for w in words], np.int32)}


def sample_numbers(count: int, rng: np.random.Generator, low: int = 0, high: int = LARGEST,
                   exclude=frozenset()) -> np.ndarray:
    """Distinct numbers in ``low..high``, as many short as long ones (uniform over digit counts)."""
    chosen = set()
    digits_low, digits_high = len(str(low)), len(str(high))
    while len(chosen) < count:
        digits = rng.integers(digits_low, digits_high + 1)
        a, b = max(low, 10 ** (digits - 1) if digits > 1 else 0), min(high, 10 ** digits - 1)
        number = int(rng.integers(a, b + 1))
        if number not in exclude:
            chosen.add(number)
    return np.array(sorted(chosen), np.int64)


def examples(numbers: np.ndarray):
    """Features for ``numbers``: the encoded words, ``odd`` (int32) and ``value`` (float32)."""
    return {**encode([german(int(n)) for n in numbers]), "odd": (numbers % 2).astype(np.int32),
            "value": numbers.astype(np.float32)}


def input_fn(features, batch_size: int, shuffle: bool = False):
    def make():
        dataset = tf.data.Dataset.from_tensor_slices(features)
        if shuffle:
            dataset = dataset.shuffle(len(features["length"]), reshuffle_each_iteration=True)
        return dataset.batch(batch_size)
    return make
