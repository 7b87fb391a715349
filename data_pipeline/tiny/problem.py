"""What a tiny-task problem is: its text, its answer (or a code problem's hidden tests) and its
solutions, each named by the strategy it follows. Made by ``problems.py`` (math) and ``code.py``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Solution:
    strategy: str  # name of the reasoning path, e.g. "euclid"
    text: str  # step-by-step solution ending in \boxed{answer}


@dataclass(frozen=True)
class Problem:
    domain: str
    kind: str
    problem: str
    answer: str  # "" for a code problem: its tests decide
    solutions: tuple[Solution, ...]
    tests: tuple[dict, ...] = ()  # a code problem's hidden tests (LiveCodeBench layout; tiny/code.py)
    fn_name: str = ""  # a functional code problem's function
