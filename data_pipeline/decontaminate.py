"""Decontamination: a training problem that is a benchmark problem is dropped (docs/method.md, data
hygiene), with two rules.

``ngram`` (the report's): the texts' word sequences (``text.words``: lower-case, punctuation and
LaTeX markup gone) share an n-gram, n = 10. A benchmark problem shorter than n words counts when
its whole word sequence appears in the training text: the report is silent on short problems,
and "never" would let exact copies of short problems through.

``similar`` (ours, for what n-grams miss): numbers are masked (``text.masked_words``: every number
becomes one placeholder word) and the share of the benchmark problem's masked word 5-grams found
in the training problem is its *containment*; at ``similarity`` (0.5) or more the training problem
is the benchmark problem with its numbers changed or part of its wording edited. Containment of
the benchmark's grams (not Jaccard) also catches a benchmark problem embedded in a longer text.
Light-R1 strips digits for exact matching; DeepMath uses embeddings plus a judge; this rule is
cheap, deterministic and explains itself (the score is written with each match).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from data_pipeline.text import grams, masked_words, words

SIMILAR_N = 5


@dataclass(frozen=True)
class Match:
    benchmark: str
    benchmark_id: str
    rule: str  # "ngram" | "similar"
    score: float  # ngram: 1.0; similar: the containment
    benchmark_problem: str


class Decontaminator:
    def __init__(self, n: int = 10, similarity: float = 0.5):
        """``n`` 0 turns the n-gram rule off, ``similarity`` 0 the similar rule."""
        self.n, self.similarity = n, similarity
        self.entries: list[tuple[str, str, str]] = []  # (benchmark, id, problem)
        self.ngrams: dict[tuple[str, ...], int] = {}
        self.short: dict[int, dict[tuple[str, ...], int]] = {}
        self.masked: dict[tuple[str, ...], list[int]] = {}
        self.masked_size: list[int] = []

    def add(self, benchmark: str, problem_id: str, problem: str) -> None:
        e = len(self.entries)
        self.entries.append((benchmark, problem_id, problem))
        if self.n:
            ws = words(problem)
            if len(ws) >= self.n:
                for g in grams(ws, self.n):
                    self.ngrams.setdefault(g, e)
            elif ws:
                self.short.setdefault(len(ws), {}).setdefault(ws, e)
        mg = grams(masked_words(problem), SIMILAR_N) if self.similarity else set()
        self.masked_size.append(len(mg))
        for g in mg:
            self.masked.setdefault(g, []).append(e)

    def _match(self, e: int, rule: str, score: float) -> Match:
        bench, pid, problem = self.entries[e]
        return Match(bench, pid, rule, round(score, 3), problem)

    def match(self, text: str) -> Match | None:
        """The benchmark problem ``text`` is a copy of, by the first rule that finds one."""
        if self.n:
            ws = words(text)
            for g in grams(ws, self.n):
                if g in self.ngrams:
                    return self._match(self.ngrams[g], "ngram", 1.0)
            for length, table in self.short.items():
                for g in grams(ws, length):
                    if g in table:
                        return self._match(table[g], "ngram", 1.0)
        if self.similarity and self.masked:
            hits: Counter[int] = Counter()
            for g in grams(masked_words(text), SIMILAR_N):
                hits.update(self.masked.get(g, ()))
            if hits:
                e, score = max(((e, h / self.masked_size[e]) for e, h in hits.items()), key=lambda t: t[1])
                if score >= self.similarity:
                    return self._match(e, "similar", score)
        return None

    def contaminated(self, text: str) -> bool:
        return self.match(text) is not None
