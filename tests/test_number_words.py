"""German number words: the spelling, the morphemes, the splits, and ``words.py`` on the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import import_example

words = import_example("german_numbers/words")
morphemes = import_example("german_numbers/morphemes")
data = import_example("german_numbers/data")
german = words.german

#: 0..99 spelled out by hand, one decade a line.
BELOW_100 = """
null eins zwei drei vier fünf sechs sieben acht neun
zehn elf zwölf dreizehn vierzehn fünfzehn sechzehn siebzehn achtzehn neunzehn
zwanzig einundzwanzig zweiundzwanzig dreiundzwanzig vierundzwanzig fünfundzwanzig sechsundzwanzig
    siebenundzwanzig achtundzwanzig neunundzwanzig
dreißig einunddreißig zweiunddreißig dreiunddreißig vierunddreißig fünfunddreißig sechsunddreißig
    siebenunddreißig achtunddreißig neununddreißig
vierzig einundvierzig zweiundvierzig dreiundvierzig vierundvierzig fünfundvierzig sechsundvierzig
    siebenundvierzig achtundvierzig neunundvierzig
fünfzig einundfünfzig zweiundfünfzig dreiundfünfzig vierundfünfzig fünfundfünfzig sechsundfünfzig
    siebenundfünfzig achtundfünfzig neunundfünfzig
sechzig einundsechzig zweiundsechzig dreiundsechzig vierundsechzig fünfundsechzig sechsundsechzig
    siebenundsechzig achtundsechzig neunundsechzig
siebzig einundsiebzig zweiundsiebzig dreiundsiebzig vierundsiebzig fünfundsiebzig sechsundsiebzig
    siebenundsiebzig achtundsiebzig neunundsiebzig
achtzig einundachtzig zweiundachtzig dreiundachtzig vierundachtzig fünfundachtzig sechsundachtzig
    siebenundachtzig achtundachtzig neunundachtzig
neunzig einundneunzig zweiundneunzig dreiundneunzig vierundneunzig fünfundneunzig sechsundneunzig
    siebenundneunzig achtundneunzig neunundneunzig
""".split()

#: The convention's forms of ``eins``/``ein``, ``einhundert`` and ``tausend``, by hand.
FORMS = {
    1: "eins",
    21: "einundzwanzig",
    100: "einhundert",
    101: "einhunderteins",
    121: "einhunderteinundzwanzig",
    201: "zweihunderteins",
    1000: "eintausend",
    1001: "eintausendeins",
    1100: "eintausendeinhundert",
    1101: "eintausendeinhunderteins",
    2001: "zweitausendeins",
    10_000: "zehntausend",
    11_000: "elftausend",
    21_000: "einundzwanzigtausend",
    31_001: "einunddreißigtausendeins",
    100_000: "einhunderttausend",
    101_000: "einhunderteintausend",
    101_001: "einhunderteintausendeins",
    111_111: "einhundertelftausendeinhundertelf",
    200_100: "zweihunderttausendeinhundert",
    999_999: "neunhundertneunundneunzigtausendneunhundertneunundneunzig",
}


def counted(word: str) -> str:
    """A count in front of ``hundert``/``tausend``: ``eins`` loses its ``s``."""
    return word[:-1] if word.endswith("eins") else word


def test_the_hand_written_words_below_100():
    assert len(BELOW_100) == 100
    assert [german(n) for n in range(100)] == BELOW_100


@pytest.mark.parametrize("number, word", sorted(FORMS.items()))
def test_the_forms_of_ein_hundert_and_tausend(number, word):
    assert german(number) == word


def test_hundreds_and_thousands_compose_from_the_words_below_100():
    """A few hundred numbers: ``<count>hundert<rest>`` and ``<count>tausend<rest>``, no ``und`` after them."""
    rng = np.random.default_rng(17)
    hundreds = [100 * h + r for h in range(1, 10) for r in (0, 1, 7, 11, 16, 17, 21, 60, 70, 99)]
    for n in hundreds + rng.integers(100, 1000, 100).tolist():
        h, r = divmod(n, 100)
        assert german(n) == counted(BELOW_100[h]) + "hundert" + (BELOW_100[r] if r else ""), n
    for n in rng.integers(1000, 1_000_000, 200).tolist():
        t, r = divmod(n, 1000)
        assert german(n) == counted(german(t)) + "tausend" + (german(r) if r else ""), n


def test_every_word_splits_into_morphemes_that_spell_it():
    assert morphemes.tokenize("einhundertdreiundzwanzigtausendsechzehn") == [
        "ein",
        "hundert",
        "drei",
        "und",
        "zwanzig",
        "tausend",
        "sech",
        "zehn",
    ]
    lengths = []
    for n in range(0, 1_000_000, 7):
        parts = morphemes.tokenize(german(n))
        assert "".join(parts) == german(n)
        lengths.append(len(parts))
    assert max(lengths) == morphemes.MAX_TOKENS
    with pytest.raises(ValueError, match="'zweiz' is not a German number word"):
        morphemes.tokenize("zweiz")


def test_encoded_morphemes_pad_with_zeros_and_keep_the_value():
    encoded = morphemes.encode(np.array([21, 1000]))
    assert encoded["length"].tolist() == [3, 2]
    ids = morphemes.TOKEN_IDS
    assert encoded["tokens"][0].tolist() == [ids["ein"], ids["und"], ids["zwanzig"]] + [0] * 8
    assert encoded["value"].tolist() == [21.0, 1000.0]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_paper_split_of_0_to_1000(seed):
    """0..19 and every morpheme in training; 169 / 200 / 632 disjoint numbers covering 0..1000."""
    sets = morphemes.paper_split(seed)
    train, validation, test = (set(sets[name].tolist()) for name in ("train", "validation", "test"))
    assert (len(train), len(validation), len(test)) == (169, 200, 632)
    assert not train & validation and not train & test and not validation & test
    assert train | validation | test == set(range(1001))
    assert set(range(20)) <= train
    seen = set().union(*(morphemes.tokenize(german(n)) for n in train))
    assert seen == set(morphemes.MORPHEMES) and 1000 in train  # tausend occurs only in eintausend
    assert all((sets[k] == morphemes.paper_split(seed)[k]).all() for k in sets)


def test_the_paper_split_depends_on_the_seed():
    assert not np.array_equal(morphemes.paper_split(0)["train"], morphemes.paper_split(1)["train"])


def test_the_digit_count_split_keeps_every_digit_count_in_training():
    sizes = {"train": 20_000, "validation": 2000, "test": 2000}
    sets = data.split(sizes, seed=0)
    assert {name: len(numbers) for name, numbers in sets.items()} == sizes
    assert len(set(np.concatenate(list(sets.values())).tolist())) == 24_000
    assert data.digit_counts(sets["train"]) == {1: 8, 2: 72, 3: 720, 4: 6400, 5: 6400, 6: 6400}
    for name in ("validation", "test"):  # a tenth of each digit count at most, the rest spread evenly
        assert data.digit_counts(sets[name]) == {1: 1, 2: 9, 3: 90, 4: 634, 5: 633, 6: 633}


def test_the_digit_count_split_refuses_sizes_it_cannot_fill():
    with pytest.raises(ValueError, match="the train set asks for 2,000 numbers, but only 90 are available"):
        data.split({"train": 2000, "test": 10}, seed=0, high=99)
    with pytest.raises(ValueError, match="sizes must name a training set and at least one held-out set"):
        data.split({"train": 10}, seed=0)


def test_a_seeded_input_function_reshuffles_every_epoch_the_same_way_each_run():
    from elistimator_tracking.inputs import InputData

    def batches():
        stream = InputData(
            data.input_fn({"length": np.arange(6, dtype=np.int32)}, 3, "lengths", shuffle_seed=0), "training"
        ).reader()
        stream.restart()
        order = [stream.next_batch()["length"].tolist() for _ in range(4)]
        stream.close()
        return order

    first = batches()
    assert sorted(first[0] + first[1]) == sorted(first[2] + first[3]) == list(range(6))
    assert first[:2] != first[2:] and batches() == first


def run_words(*args: str) -> subprocess.CompletedProcess:
    script = Path(__file__).resolve().parents[1] / "examples" / "german_numbers" / "words.py"
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=60)


def test_words_prints_the_word_for_each_number():
    done = run_words("1234", "21", "0")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "eintausendzweihundertvierunddreißig\neinundzwanzig\nnull\n",
        "",
    )


@pytest.mark.parametrize(
    "bad, message",
    [
        ("1000000", "number must be in 0..999,999, got 1,000,000"),
        ("-5", "'-5' is not a number: expected an integer in 0..999999"),
        ("zwölf", "'zwölf' is not a number: expected an integer in 0..999999"),
    ],
)
def test_words_refuses_bad_input_in_one_line(bad, message):
    done = run_words("21", bad)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"words.py: error: {message}\n"


def test_words_without_a_number_shows_its_usage():
    done = run_words()
    assert done.returncode == 2 and "usage: words.py" in done.stderr and "required: number" in done.stderr
