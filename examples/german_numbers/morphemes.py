"""German number words as sequences of morphemes, and the NALU paper's split of 0..1000.

A word is cut into its number morphemes, longest match first:
``einhundertdreiundzwanzigtausendsechzehn`` is
``ein|hundert|drei|und|zwanzig|tausend|sech|zehn``. These are the tokens of Trask et
al. (2018)'s language-to-number task (there: English words, ``seven hundred and three``).
"""

from __future__ import annotations

import numpy as np
from words import german

MORPHEMES = [
    "null",
    "eins",
    "ein",
    "zwei",
    "drei",
    "vier",
    "fünf",
    "sechs",
    "sech",
    "sieben",
    "sieb",
    "acht",
    "neun",
    "zehn",
    "elf",
    "zwölf",
    "zwanzig",
    "dreißig",
    "vierzig",
    "fünfzig",
    "sechzig",
    "siebzig",
    "achtzig",
    "neunzig",
    "und",
    "hundert",
    "tausend",
]
TOKEN_IDS = {m: i + 1 for i, m in enumerate(MORPHEMES)}  # 0 pads
VOCABULARY = len(MORPHEMES) + 1
MAX_TOKENS = 11  # the most a word has, e.g. german(121_121): ein|hundert|ein|und|zwanzig|tausend|...
_LONGEST_FIRST = sorted(MORPHEMES, key=len, reverse=True)

#: The paper's protocol: numbers 0..1000; training is 0..19 plus a random sample of the
#: rest, adjusted so that every token occurs in training; 169 train, 200 validation.
PAPER_RANGE = 1000
PAPER_TRAIN, PAPER_VALIDATION = 169, 200


def tokenize(word: str) -> list[str]:
    """Split a number word into morphemes, longest match first."""
    tokens, rest = [], word
    while rest:
        match = next((m for m in _LONGEST_FIRST if rest.startswith(m)), None)
        if match is None:
            raise ValueError(f"{word!r} is not a German number word (stuck at {rest!r})")
        tokens.append(match)
        rest = rest[len(match) :]
    return tokens


def encode(numbers: np.ndarray) -> dict[str, np.ndarray]:
    """``{'tokens': int32 (n, MAX_TOKENS) zero-padded, 'length': int32 (n,), 'value': float32 (n,)}``."""
    tokens = np.zeros((len(numbers), MAX_TOKENS), np.int32)
    lengths = np.zeros(len(numbers), np.int32)
    for row, number in enumerate(numbers):
        ids = [TOKEN_IDS[t] for t in tokenize(german(int(number)))]
        tokens[row, : len(ids)], lengths[row] = ids, len(ids)
    return {"tokens": tokens, "length": lengths, "value": np.asarray(numbers).astype(np.float32)}


def paper_split(seed: int) -> dict[str, np.ndarray]:
    """Train / validation / test numbers of 0..1000 as the NALU paper draws them (sorted, disjoint).

    Training: 0..19 and a random sample of 20..1000 (169 in all); while some token is
    missing from training, a sampled number without a token it needs is swapped for a
    random number that has one. Validation: 200 random of the rest. Test: all others
    (632: 0..1000 holds 1,001 numbers; the paper's test set had 631).
    """
    rng = np.random.default_rng(seed)
    tokens = {n: set(tokenize(german(n))) for n in range(PAPER_RANGE + 1)}
    first = list(range(20))
    rest = rng.permutation(np.arange(20, PAPER_RANGE + 1)).tolist()
    sampled, pool = rest[: PAPER_TRAIN - len(first)], rest[PAPER_TRAIN - len(first) :]
    while missing := sorted(set(MORPHEMES) - set().union(*(tokens[n] for n in first + sampled))):
        needed = missing[0]
        donor = next(n for n in pool if needed in tokens[n])  # pool is shuffled: a random donor
        counts = _token_counts(tokens, first + sampled)
        swappable = [n for n in sampled if all(counts[t] > 1 for t in tokens[n])]
        out = swappable[int(rng.integers(len(swappable)))]
        sampled[sampled.index(out)] = donor
        pool[pool.index(donor)] = out
    train = np.array(sorted(first + sampled), np.int64)
    validation = np.array(sorted(pool[:PAPER_VALIDATION]), np.int64)
    test = np.array(sorted(pool[PAPER_VALIDATION:]), np.int64)
    return {"train": train, "validation": validation, "test": test}


def _token_counts(tokens: dict[int, set], numbers: list[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in numbers:
        for t in tokens[n]:
            counts[t] = counts.get(t, 0) + 1
    return counts
