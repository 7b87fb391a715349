"""n-gram decontamination (docs/method.md, data hygiene).

Text is normalised (lowercase; punctuation and symbols become spaces) and split into words.
A training row is dropped when it shares a word n-gram with any evaluation problem. An
evaluation problem shorter than n words counts as contaminating when its whole word sequence
appears in the training text: the report is silent on short problems, and "never" would let
exact copies of short problems through.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_NON_WORD = re.compile(r"[^0-9a-z]+")


def words(text: str) -> tuple[str, ...]:
    return tuple(_NON_WORD.sub(" ", text.lower()).split())


def _grams(ws: tuple[str, ...], n: int) -> set[tuple[str, ...]]:
    return {ws[i : i + n] for i in range(len(ws) - n + 1)}


class Decontaminator:
    def __init__(self, eval_texts: Iterable[str], n: int = 10):
        self.n = n
        self.grams: set[tuple[str, ...]] = set()
        self.short: dict[int, set[tuple[str, ...]]] = {}
        for text in eval_texts:
            ws = words(text)
            if len(ws) >= n:
                self.grams |= _grams(ws, n)
            elif ws:
                self.short.setdefault(len(ws), set()).add(ws)

    def contaminated(self, text: str) -> bool:
        ws = words(text)
        if self.grams and not self.grams.isdisjoint(_grams(ws, self.n)):
            return True
        return any(not grams.isdisjoint(_grams(ws, length)) for length, grams in self.short.items())
