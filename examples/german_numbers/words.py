"""German number words for 0..999,999, spelled one fixed way.

Convention (all in one word, lower case, as Duden writes numbers under a million):

- ``1`` alone is ``eins``; inside a compound it is ``ein``: ``einundzwanzig``,
  ``einhundert``, ``eintausend``, ``einundzwanzigtausend``.
- Hundreds and thousands always carry their count: ``100`` is ``einhundert`` (not
  ``hundert``), ``1000`` is ``eintausend``, ``1100`` is ``eintausendeinhundert``.
- No ``und`` after hundreds: ``101`` is ``einhunderteins``, ``110`` is
  ``einhundertzehn``; ``und`` joins only units and tens: ``einhundertzweiundvierzig``.
- ``ß`` and umlauts are kept: ``dreißig``, ``fünf``, ``zwölf``; ``16`` is ``sechzehn``,
  ``17`` is ``siebzehn``, ``60`` is ``sechzig``, ``70`` is ``siebzig``.

    python examples/german_numbers/words.py 1234 21     # one word per line
"""

from __future__ import annotations

import argparse
import sys

UNITS = ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"]
TEENS = {
    10: "zehn",
    11: "elf",
    12: "zwölf",
    13: "dreizehn",
    14: "vierzehn",
    15: "fünfzehn",
    16: "sechzehn",
    17: "siebzehn",
    18: "achtzehn",
    19: "neunzehn",
}
TENS = {2: "zwanzig", 3: "dreißig", 4: "vierzig", 5: "fünfzig", 6: "sechzig", 7: "siebzig", 8: "achtzig", 9: "neunzig"}
LARGEST = 999_999


def german(number: int) -> str:
    """The German word for ``number`` (0..999,999), e.g. ``german(21) == 'einundzwanzig'``."""
    if isinstance(number, bool) or not isinstance(number, int):
        raise TypeError(f"number must be an int, got {type(number).__name__}")
    if not 0 <= number <= LARGEST:
        raise ValueError(f"number must be in 0..{LARGEST:,}, got {number:,}")
    if number == 0:
        return "null"
    thousands, rest = divmod(number, 1000)
    word = _compound(_below_thousand(thousands)) + "tausend" if thousands else ""
    return word + _below_thousand(rest)


def _below_thousand(number: int) -> str:
    hundreds, rest = divmod(number, 100)
    word = _compound(UNITS[hundreds]) + "hundert" if hundreds else ""
    return word + _below_hundred(rest)


def _below_hundred(number: int) -> str:
    if number == 0:
        return ""
    if number < 10:
        return UNITS[number]
    if number < 20:
        return TEENS[number]
    tens, units = divmod(number, 10)
    return (_compound(UNITS[units]) + "und" if units else "") + TENS[tens]


def _compound(word: str) -> str:
    """A count in front of another word: ``eins`` becomes ``ein``."""
    return word[:-1] if word.endswith("eins") else word


def main(argv: list[str] | None = None) -> None:
    """Print the word for each number given; a bad number is a one-line error and exit code 2."""
    parser = argparse.ArgumentParser(description="Print German number words (0..999,999).")
    parser.add_argument("numbers", nargs="+", metavar="number", help="an integer in 0..999999")
    args = parser.parse_args(argv)
    words = []
    for text in args.numbers:
        if not (text.isascii() and text.isdigit()):
            parser.exit(2, f"words.py: error: {text!r} is not a number: expected an integer in 0..{LARGEST}\n")
        try:
            words.append(german(int(text)))
        except ValueError as error:
            parser.exit(2, f"words.py: error: {error}\n")
    print("\n".join(words))


if __name__ == "__main__":
    main(sys.argv[1:])
