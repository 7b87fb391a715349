"""Text normalisation shared by deduplication and decontamination.

``words``: lower-case, every run of characters other than a-z and 0-9 becomes a space (LaTeX
commands, punctuation and spacing differences vanish). ``masked_words``: the same after every
number is replaced by one placeholder word, so two problems that differ only in their numbers
have the same word sequence. ``grams``: the set of word n-grams.
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


def grams(ws: tuple[str, ...], n: int) -> set[tuple[str, ...]]:
    return {ws[i : i + n] for i in range(len(ws) - n + 1)}
