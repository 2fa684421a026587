"""German number words as model input: character ids, lengths, the number itself, and the split.

The split rule (``split``): every set is drawn uniformly over digit counts, as far as a
digit count has numbers. The held-out sets together take at most ``held_out_share``
(a fifth) of the numbers of any digit count, so training always keeps the rest: with
the parity example's sizes it holds all 8 one-digit numbers the held-out sets left,
72 two-digit and 720 three-digit numbers, and 6,400 of each longer digit count.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import numpy as np
import tensorflow.compat.v1 as tf
from words import LARGEST, german

from elistimator_tracking import named_input

ALPHABET = "abcdefghijklmnopqrstuvwxyzäöüß"
MAX_LENGTH = 65  # the longest word, german(727_727), has 65 letters
CHAR_IDS = {c: i + 1 for i, c in enumerate(ALPHABET)}  # 0 pads
VOCABULARY = len(ALPHABET) + 1
HELD_OUT_SHARE = 0.2


def encode(words):
    """Words -> ``{'chars': int32 (n, MAX_LENGTH), 'length': int32 (n,)}`` (zero-padded)."""
    chars = np.zeros((len(words), MAX_LENGTH), np.int32)
    for row, word in enumerate(words):
        if len(word) > MAX_LENGTH or set(word) - set(ALPHABET):
            raise ValueError(f"{word!r} is not a German number word of at most {MAX_LENGTH} letters")
        chars[row, : len(word)] = [CHAR_IDS[c] for c in word]
    return {"chars": chars, "length": np.array([len(w) for w in words], np.int32)}


def split(
    sizes: Mapping[str, int], seed: int, high: int = LARGEST, held_out_share: float = HELD_OUT_SHARE
) -> dict[str, np.ndarray]:
    """Disjoint sets of numbers in ``0..high``, ``{name: sorted int64 array}``; the first name is training.

    Each set is spread evenly over digit counts as far as they have numbers (a digit count
    that runs out passes its share to the others). The held-out sets (every name after the
    first) may take together at most ``held_out_share`` of a digit count's numbers;
    training draws from what they leave.
    """
    names = list(sizes)
    if len(names) < 2 or any(n < 1 for n in sizes.values()):
        raise ValueError(
            f"sizes must name a training set and at least one held-out set, each of at least "
            f"one number, got {dict(sizes)}"
        )
    rng = np.random.default_rng(seed)
    groups = [
        rng.permutation(np.arange(10 ** (d - 1) if d > 1 else 0, min(high, 10**d - 1) + 1))
        for d in range(1, len(str(high)) + 1)
    ]
    taken = [0] * len(groups)
    chosen = {}
    for name in names[1:] + names[:1]:
        if name == names[0]:
            room = [len(g) - t for g, t in zip(groups, taken, strict=False)]
        else:
            room = [int(len(g) * held_out_share) // (len(names) - 1) for g in groups]
        counts = _even_shares(sizes[name], room, name)
        chosen[name] = np.sort(np.concatenate([g[t : t + c] for g, t, c in zip(groups, taken, counts, strict=False)]))
        taken = [t + c for t, c in zip(taken, counts, strict=False)]
    return {name: chosen[name].astype(np.int64) for name in names}


def _even_shares(total: int, room: list[int], name: str) -> list[int]:
    """``total`` spread as evenly as ``room`` allows (a group that is full passes its share on)."""
    if total > sum(room):
        raise ValueError(f"the {name} set asks for {total:,} numbers, but only {sum(room):,} are available to it")
    counts = [0] * len(room)
    while total > sum(counts):
        open_groups = [i for i in range(len(room)) if counts[i] < room[i]]
        share, extra = divmod(total - sum(counts), len(open_groups))
        for rank, i in enumerate(open_groups):
            counts[i] = min(room[i], counts[i] + share + (rank < extra))
    return counts


def digit_counts(numbers: np.ndarray) -> dict[int, int]:
    """``{digits: how many numbers have that many}`` (0 has one digit)."""
    lengths, counts = np.unique([len(str(int(n))) for n in numbers], return_counts=True)
    return {int(d): int(c) for d, c in zip(lengths, counts, strict=False)}


def examples(numbers: np.ndarray):
    """Features for ``numbers``: the encoded words, ``odd`` (int32) and ``value`` (float32)."""
    return {
        **encode([german(int(n)) for n in numbers]),
        "odd": (numbers % 2).astype(np.int32),
        "value": numbers.astype(np.float32),
    }


def input_fn(features, batch_size: int, name: str, shuffle_seed=None):
    """An input function over ``features``, one pass in order; with ``shuffle_seed``, endless training
    data (train with a step count), reshuffled every epoch in the same way on every run. ``name`` is
    what the MLflow run calls the data (its Datasets column; without it, the function's name).

    The repeat sits after the shuffle: a seeded shuffle that starts over (a new iterator
    each epoch) would replay the same order every epoch.
    """

    def make():
        dataset = tf.data.Dataset.from_tensor_slices(features)
        if shuffle_seed is None:
            return dataset.batch(batch_size)
        size = len(next(iter(features.values())))
        return dataset.shuffle(size, seed=shuffle_seed, reshuffle_each_iteration=True).batch(batch_size).repeat()

    return named_input(make, name)


def seed_graph(seed: int) -> None:
    """Seed what a model function's initial weights come from, so a seed repeats its run.

    Call it first in the model function (the graph-level seed belongs to the graph being
    built). tf-keras' legacy layers (``tf.layers.dense``, ``tf.nn.rnn_cell.LSTMCell``)
    draw their initializers' seeds from Python's ``random``, some of its ops from NumPy's.
    """
    tf.set_random_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
