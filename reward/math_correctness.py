"""``math_correctness``: 1.0 if the completion's final answer equals the gold answer, else 0.0.

The answer is the content of the last ``\\boxed{...}``; without one, math-verify's own
extraction reads the last ``MAX_FALLBACK_CHARS`` characters. Comparison is math-verify's
``verify(gold, prediction)`` (gold first: it is asymmetric), after a fast path for answers
that are equal as normalised strings.

Scoring rules, including for untrusted model output:
- gold answer that math-verify cannot parse: ``None`` (cannot be scored);
- no extractable answer, or an answer that does not match: 0.0;
- a parse or comparison that outlives ``timeout`` seconds: its worker process is killed and
  replaced and the item scores 0.0 (``timeouts`` counts them); likewise a worker that dies,
  e.g. by exceeding its ``memory_mb`` address-space limit while sympy expands an expression.
Work is spread over ``workers`` processes (default: all cores, at most 8).
"""

from __future__ import annotations

import os
import resource
from functools import partial

from reward.math_answer import _normalise, extract_boxed, words_to_number
from reward.pool import CRASHED, TIMEOUT, HardTimeoutPool
from reward.registry import completion_text

MAX_FALLBACK_CHARS = 2000
MAX_ANSWER_CHARS = 1000  # a boxed answer longer than this is not a final answer


def _score(item: tuple[str, str]) -> float | None:
    """Runs in a worker: (gold, completion) -> 1.0 / 0.0 / None."""
    from math_verify import parse, verify

    gold, completion = item
    gold = words_to_number(gold) or gold
    gold_parsed = parse(f"${gold}$") if "$" not in gold and "\\boxed" not in gold else parse(gold)
    if not gold_parsed:
        return None
    boxed = extract_boxed(completion)
    if boxed is not None:
        if len(boxed) > MAX_ANSWER_CHARS:
            return 0.0
        boxed = words_to_number(boxed) or boxed  # "\\text{five}" -> "5"
        if _normalise(boxed) == _normalise(gold):
            return 1.0
        predicted = parse(f"$\\boxed{{{boxed}}}$")
    else:
        predicted = parse(completion[-MAX_FALLBACK_CHARS:])
    if not predicted:
        return 0.0
    return 1.0 if verify(gold_parsed, predicted) else 0.0


def _limit_memory(memory_mb: int) -> None:
    """Worker initializer: cap the address space so a runaway sympy expansion dies alone."""
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


class MathCorrectness:
    """Callable reward; see the module docstring."""

    def __init__(
        self,
        answer_column: str = "answer",
        timeout: float = 10.0,
        workers: int | None = None,
        memory_mb: int = 2048,
    ):
        self.__name__ = "math_correctness"  # TRL logs rewards under their __name__
        self.answer_column = answer_column
        self.timeout = timeout
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.memory_mb = memory_mb
        self.timeouts = 0
        self._pool: HardTimeoutPool | None = None

    @property
    def pool(self) -> HardTimeoutPool:
        if self._pool is None:
            self._pool = HardTimeoutPool(
                _score, self.workers, self.timeout, partial(_limit_memory, self.memory_mb)
            )
        return self._pool

    def __call__(self, completions: list, **columns) -> list[float | None]:
        if self.answer_column not in columns:
            raise KeyError(
                f"math_correctness needs the dataset column {self.answer_column!r} "
                f"(got columns: {sorted(columns)})"
            )
        golds = columns[self.answer_column]
        items = [(str(g), completion_text(c)) for g, c in zip(golds, completions, strict=True)]
        out: list[float | None] = []
        for result in self.pool.map(items):
            if result in (TIMEOUT, CRASHED) or isinstance(result, tuple):
                self.timeouts += result == TIMEOUT
                out.append(0.0)
            else:
                out.append(result)
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
