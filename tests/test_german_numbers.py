"""The German number words generator against hand-checked words."""

import pytest
from conftest import import_example

german = import_example("german_numbers/words").german

HAND_CHECKED = {
    0: "null",
    1: "eins",
    2: "zwei",
    6: "sechs",
    7: "sieben",
    10: "zehn",
    11: "elf",
    12: "zwölf",
    13: "dreizehn",
    16: "sechzehn",
    17: "siebzehn",
    19: "neunzehn",
    20: "zwanzig",
    21: "einundzwanzig",
    30: "dreißig",
    35: "fünfunddreißig",
    60: "sechzig",
    66: "sechsundsechzig",
    70: "siebzig",
    77: "siebenundsiebzig",
    99: "neunundneunzig",
    100: "einhundert",
    101: "einhunderteins",
    110: "einhundertzehn",
    111: "einhundertelf",
    121: "einhunderteinundzwanzig",
    200: "zweihundert",
    342: "dreihundertzweiundvierzig",
    999: "neunhundertneunundneunzig",
    1000: "eintausend",
    1001: "eintausendeins",
    1100: "eintausendeinhundert",
    1234: "eintausendzweihundertvierunddreißig",
    2000: "zweitausend",
    10000: "zehntausend",
    11000: "elftausend",
    16016: "sechzehntausendsechzehn",
    21000: "einundzwanzigtausend",
    21021: "einundzwanzigtausendeinundzwanzig",
    100000: "einhunderttausend",
    101000: "einhunderteintausend",
    101101: "einhunderteintausendeinhunderteins",
    700007: "siebenhunderttausendsieben",
    999999: "neunhundertneunundneunzigtausendneunhundertneunundneunzig",
}


@pytest.mark.parametrize("number, word", sorted(HAND_CHECKED.items()))
def test_hand_checked_words(number, word):
    assert german(number) == word


def test_every_number_has_its_own_word_and_fits_the_model_input():
    words = [german(n) for n in range(1_000_000)]
    assert len(set(words)) == 1_000_000
    data = import_example("german_numbers/data")
    assert max(map(len, words)) == data.MAX_LENGTH and set("".join(words)) <= set(data.ALPHABET)


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (1_000_000, ValueError), (2.0, TypeError), (True, TypeError)])
def test_numbers_outside_the_range_are_refused(bad, error):
    with pytest.raises(error, match="number must be"):
        german(bad)
