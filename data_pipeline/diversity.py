"""Diversity selection: among a problem's correct solutions, keep the m that differ most.

Divergence of two solutions: 1 - Jaccard similarity of their word 3-gram sets (``text.words``:
lower-case, LaTeX markup and punctuation gone). We chose it over embeddings (a model to load and
a space nobody can read) and over reasoning-step segmentation (no robust segmenter for free-form
traces): it is deterministic, needs no model, costs O(length), and it separates solutions that
take different routes, which use different words, from rephrasings of one route, which share
most 3-grams. Its blind spot: two routes written with the same phrases look alike.

Selection (``method``):

- ``maxmin`` (default): greedy farthest-point selection. Start with the solution whose mean
  divergence to the others is largest, then repeatedly add the solution whose smallest divergence
  to those already kept is largest (ties: the earlier sample). The classic 2-approximation of
  the max-min dispersion problem; Reasoning Path Divergence (arXiv 2510.26122) picks maximally
  different solutions the same way with a step-level distance.
- ``random``: m correct solutions drawn with a seeded generator (the ablation).
- ``all``: every correct solution (m is ignored).
"""

from __future__ import annotations

import random
from itertools import combinations

from ssp.data_pipeline.teacher import correct
from ssp.data_pipeline.text import grams, words

METHODS = ("maxmin", "random", "all")
N = 3


def shingles(text: str) -> frozenset[tuple[str, ...]]:
    ws = words(text)
    return frozenset(grams(ws, N) if len(ws) >= N else {ws})


def divergence(a: frozenset, b: frozenset) -> float:
    if not a and not b:
        return 0.0
    return 1.0 - len(a & b) / len(a | b)


def select(texts: list[str], m: int, method: str = "maxmin", seed: int = 0) -> list[int]:
    """Indices (into ``texts``, which are all correct) of the solutions to keep, in the order chosen."""
    if method not in METHODS:
        raise ValueError(f"unknown selection method {method!r}; known: {METHODS}")
    if method == "all" or len(texts) <= m:
        return list(range(len(texts)))
    if method == "random":
        return sorted(random.Random(seed).sample(range(len(texts)), m))
    sets = [shingles(t) for t in texts]
    d = [[divergence(a, b) for b in sets] for a in sets]
    first = max(range(len(texts)), key=lambda i: (sum(d[i]), -i))
    chosen = [first]
    nearest = list(d[first])  # each candidate's smallest divergence to the chosen set
    while len(chosen) < m:
        best = max((i for i in range(len(texts)) if i not in chosen), key=lambda i: (nearest[i], -i))
        chosen.append(best)
        nearest = [min(nearest[i], d[best][i]) for i in range(len(texts))]
    return chosen


def mean_pairwise_divergence(texts: list[str]) -> float | None:
    """Mean divergence over the pairs of one kept set; None for fewer than two solutions."""
    if len(texts) < 2:
        return None
    sets = [shingles(t) for t in texts]
    pairs = list(combinations(sets, 2))
    return sum(divergence(a, b) for a, b in pairs) / len(pairs)


def correct_pool(samples: list[dict]) -> list[dict]:
    """The samples a selection may keep: correct (score 1.0) and finished (``finish_reason`` 'stop';
    a truncated sample never counts, even when its answer parsed), exact repeats of an earlier text
    removed (they add nothing to the spectrum)."""
    seen: set[str] = set()
    pool = []
    for s in samples:
        if correct(s) and s["text"] not in seen:
            seen.add(s["text"])
            pool.append(s)
    return pool


def pick(pool: list[dict], m: int, method: str = "maxmin", seed: int = 0) -> list[dict]:
    """Up to m samples of a ``correct_pool`` by ``method``."""
    return [pool[i] for i in select([s["text"] for s in pool], m, method, seed)]
