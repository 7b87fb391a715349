"""Text normalisation shared by deduplication and decontamination.

``words``: lower-case, every run of characters other than a-z and 0-9 becomes a space (LaTeX
commands, punctuation and spacing differences vanish). ``masked_words``: the same after every
number is replaced by one placeholder word, so two problems that differ only in their numbers
have the same word sequence. ``statement``: the text without Asymptote figure code. ``shape``: ``masked_words`` with number words ("six", "twenty") masked
too and operators kept as words (``2x + 1 < 5`` and ``7x + 3 < 9`` share a shape, ``2x - 1 < 5``
does not). ``grams``: the set of word n-grams.
"""

from __future__ import annotations

import re

_NON_WORD = re.compile(r"[^0-9a-z]+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
NUMBER = "num"  # the placeholder: a word that no problem text contains as digits


def words(text: str) -> tuple[str, ...]:
    return tuple(_NON_WORD.sub(" ", text.lower()).split())


def masked_words(text: str) -> tuple[str, ...]:
    return words(_NUMBER.sub(f" {NUMBER} ", text))


_NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million"
)
_NUMBER_WORD = re.compile(rf"\b(?:{'|'.join(_NUMBER_WORDS.split())})\b")
_SHAPE_TOKEN = re.compile(r"[0-9a-z]+|[-+=<>^/*!|]")


_SYMBOLS = str.maketrans(
    {
        "√": " sqrt ",
        "°": " circ ",
        "≠": " neq ",
        "≤": " le ",
        "≥": " ge ",
        "×": " times ",
        "·": " cdot ",
        "π": " pi ",
        "−": "-",
        "∞": " infty ",
    }
)
_FRACTION = re.compile(r"\\[dt]?frac(?![a-zA-Z])")


_FIGURE = re.compile(r"\[asy\].*?(?:\[/asy\]|$)", re.S)


def statement(text: str) -> str:
    """The problem without its Asymptote figure code (coordinates and labels are not its wording)."""
    return _FIGURE.sub(" ", text)


def tokens(text: str) -> tuple[str, ...]:
    """``words`` with operators kept: what a verbatim copy keeps however it is cased or spaced. Unicode
    symbols read as their LaTeX names (√ = \\sqrt) and a fraction as a division (\\frac = /)."""
    return tuple(_SHAPE_TOKEN.findall(_FRACTION.sub(" / ", text.translate(_SYMBOLS)).lower()))


def shape(text: str) -> tuple[str, ...]:
    return tokens(_NUMBER_WORD.sub(f" {NUMBER} ", _NUMBER.sub(f" {NUMBER} ", text.lower())))


def grams(ws: tuple[str, ...], n: int) -> set[tuple[str, ...]]:
    return {ws[i : i + n] for i in range(len(ws) - n + 1)}
