"""``math_correctness``: 1.0 if the completion's final answer equals the gold answer, else 0.0.

The answer is the content of the last ``\\boxed{...}``; without one, math-verify's own
extraction reads the last ``MAX_FALLBACK_CHARS`` characters. Comparison is math-verify's
``verify(gold, prediction)`` (gold first: it is asymmetric), after a fast path for answers
that are equal as normalised strings. An escaped dollar (``\\$36``, as MATH-500 writes three of
its gold answers) is a currency sign, not math mode: it is dropped from both sides.

Outcomes (``reward/outcome.py``), including for untrusted model output:
- no extractable answer, or an answer that does not match: 0.0;
- a gold answer math-verify cannot parse: unscorable (None);
- an item that outlives ``timeout`` seconds: its worker is killed and replaced; the item is a
  *timeout* (None, counted), never 0.0;
- an item whose scoring raises, or whose worker dies (e.g. an expansion past ``memory_mb``):
  an *error* (None, counted). More than ``max_failure_rate`` of a call's items failing, or all
  of them, raises ``RewardError``.

Departures from plain math-verify: its own ``signal.alarm`` timeouts are off (the pool's hard
timeout is the only one, so every timeout is counted: math-verify's would silently answer
"not equal"). As in math-verify, a text it cannot parse (even when sympy raises, as it does on
numbers written with Arabic-Indic digits) holds no answer: a wrong answer for a completion,
unscorable for a gold; and a comparison that raises inside sympy means "not equal": comparing
incomparable objects is common in model output and is not a verifier failure. A MemoryError is
never swallowed: it is an error of the item.

Work is spread over ``workers`` processes (default: all cores, at most 8), started as fresh
interpreters (``reward/pool.py``): they work whatever the calling script imported.
"""

from __future__ import annotations

import os

from reward.math_answer import extract_boxed, normalise, words_to_number
from reward.outcome import ERROR, SCORED, TIMEOUT, UNSCORABLE, CheckedReward, RewardError
from reward.pool import OK, HardTimeoutPool, PoolError
from reward.pool import TIMEOUT as POOL_TIMEOUT
from reward.registry import completion_text

MAX_FALLBACK_CHARS = 2000
MAX_ANSWER_CHARS = 1000  # a boxed answer longer than this is not a final answer


def _strip_currency(answer: str) -> str:
    return answer.replace("\\$", "")


def _parse(text: str) -> list:
    """math-verify's parse, its own timeouts off; what it cannot parse, even by raising (sympy on a
    number written with non-ASCII digits, say), is nothing parsed. A MemoryError is not swallowed:
    it is the worker's limit, an error of the item."""
    from math_verify import parse

    try:
        return parse(text, parsing_timeout=None, raise_on_error=True)
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - an unparseable text: no answer in it
        return []


def score_item(item: tuple[str, str]) -> float | None:
    """Runs in a worker: (gold, completion) -> 1.0 / 0.0 / None (gold cannot be parsed)."""
    from math_verify import verify

    gold, completion = item
    gold = _strip_currency(words_to_number(gold) or gold)
    gold_parsed = _parse(f"${gold}$" if "$" not in gold and "\\boxed" not in gold else gold)
    if not gold_parsed:
        return None
    boxed = extract_boxed(completion)
    if boxed is not None:
        if len(boxed) > MAX_ANSWER_CHARS:
            return 0.0
        boxed = _strip_currency(words_to_number(boxed) or boxed)  # "\\text{five}" -> "5"
        if normalise(boxed) == normalise(gold):
            return 1.0
        predicted = _parse(f"$\\boxed{{{boxed}}}$")
    else:
        predicted = _parse(completion[-MAX_FALLBACK_CHARS:])
    if not predicted:
        return 0.0
    return 1.0 if verify(gold_parsed, predicted, timeout_seconds=None) else 0.0


def warm_up() -> None:
    """Run once in each worker before it takes items: import math-verify and sympy's parser, and
    silence math-verify's warning that its own timeouts are off (the pool's hard timeout applies)."""
    import logging

    import math_verify.grader
    import math_verify.parser

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    math_verify.parser.TIMEOUT_WARNING_SHOWN = math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    assert score_item(("\\frac{1}{2}", "\\boxed{0.5}")) == 1.0, "math-verify does not work here"


class MathCorrectness(CheckedReward):
    """Callable reward; see the module docstring."""

    def __init__(
        self,
        answer_column: str = "answer",
        timeout: float = 10.0,
        workers: int | None = None,
        memory_mb: int = 2048,
        max_failure_rate: float = 0.25,
    ):
        super().__init__(max_failure_rate)
        self.__name__ = "math_correctness"  # TRL logs rewards under their __name__
        self.answer_column = answer_column
        self.timeout = timeout
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.memory_mb = memory_mb
        self._pool: HardTimeoutPool | None = None

    @property
    def pool(self) -> HardTimeoutPool:
        if self._pool is None:
            target = f"{__name__}:score_item"
            self._pool = HardTimeoutPool(target, self.workers, self.timeout, self.memory_mb)
        return self._pool

    def _outcomes(self, completions: list, **columns) -> list[tuple[str, float | None, str]]:
        if self.answer_column not in columns:
            raise KeyError(
                f"math_correctness needs the dataset column {self.answer_column!r} "
                f"(got columns: {sorted(columns)})"
            )
        golds = columns[self.answer_column]
        items = [(str(g), completion_text(c)) for g, c in zip(golds, completions, strict=True)]
        try:
            outcomes = self.pool.map(items)
        except PoolError as err:
            self.close()
            raise RewardError(f"reward math_correctness: {err}") from None
        out = []
        for outcome in outcomes:
            if outcome.status == OK:
                out.append(
                    (SCORED, outcome.value, "") if outcome.value is not None else (UNSCORABLE, None, "")
                )
            else:
                out.append((TIMEOUT if outcome.status == POOL_TIMEOUT else ERROR, None, outcome.message))
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
