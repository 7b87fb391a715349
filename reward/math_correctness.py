"""``math_correctness``: 1.0 if the completion's final answer equals the gold answer, else 0.0.

The answer is what ``reward.math_answer.final_answer`` finds: after ``</think>``, the last
``\\boxed{...}``, else an explicit final-answer statement on the last line; a completion with
neither, or cut inside ``<think>``, holds *no answer*: 0.0, and counted (``no_answer_rate``).
Both answers are put in the same form (``reward/answer_forms.py``: units, percent, scientific
notation, option letters, ...), then compared as normalised strings and, failing that, by
math-verify's ``verify(gold, prediction)`` (gold first: it is asymmetric).

Outcomes (``reward/outcome.py``), including for untrusted model output:
- no answer, or an answer that does not match: 0.0;
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

``grader`` picks the protocol (``reward/graders.py``): ``ssp`` (this module), ``deepscaler`` (the
VibeThinker report's own) or ``qwen25math``. ``grades_truncated`` says whether a completion cut at
the token limit is graded (``qwen25math``) or scores 0 (the others: unfinished work); the callers
that know finish reasons apply it (``sampling/scoring.py``, ``train/mgpo.py``).
"""

from __future__ import annotations

import functools
import os

from ssp.reward.answer_forms import canonical, option_letters, percent_forms, right_hand_sides, times
from ssp.reward.graders import GRADERS
from ssp.reward.math_answer import final_answer, normalise
from ssp.reward.outcome import ERROR, SCORED, TIMEOUT, UNSCORABLE, CheckedReward, RewardError
from ssp.reward.pool import OK, HardTimeoutPool, PoolError
from ssp.reward.pool import TIMEOUT as POOL_TIMEOUT
from ssp.reward.registry import completion_text

MAX_ANSWER_CHARS = 1000  # a boxed answer longer than this is not a final answer
_CONFIG: list | None = None


def _config() -> list:
    """math-verify's extraction settings, with its unit removal off: ``reward/answer_forms.py``
    removes units itself, never single letters (math-verify's list made ``4h`` equal ``4``)."""
    from latex2sympy2_extended.latex2sympy2 import NormalizationConfig
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    norm = NormalizationConfig(
        basic_latex=True, units=False, malformed_operators=True, nits=True, boxed="all", equations=False
    )
    return [LatexExtractionConfig(normalization_config=norm), ExprExtractionConfig()]


def _parse(text: str) -> list:
    """math-verify's parse, its own timeouts off; what it cannot parse, even by raising (sympy on a
    number written with non-ASCII digits, say), is nothing parsed. A MemoryError is not swallowed:
    it is the worker's limit, an error of the item. Remembered per text in the worker: a gold is
    checked, then compared, and its n samples share it."""
    return list(_parse_once(text))


@functools.lru_cache(maxsize=1024)
def _parse_once(text: str) -> tuple:
    global _CONFIG
    from math_verify import parse

    if _CONFIG is None:
        _CONFIG = _config()
    try:
        return tuple(parse(text, extraction_config=_CONFIG, parsing_timeout=None, raise_on_error=True))
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - an unparseable text: no answer in it
        return ()


def _math(answer: str) -> str:
    return answer if "$" in answer or "\\boxed" in answer else f"${answer}$"


def score_item(item: tuple[str, str]) -> tuple[float | None, str]:
    """Runs in a worker: (gold, completion) -> (score, why the completion holds no answer).

    The score is 1.0 / 0.0, or None when the gold cannot be parsed; the second value is ``""``
    when the completion holds an answer, else ``reward.math_answer``'s ``NO_ANSWER`` or
    ``UNCLOSED_THINK`` (the answer policy: ``final_answer``)."""
    gold, completion = item
    found = final_answer(completion)
    gold = canonical(gold)
    if not _parse(_math(gold)):
        return None, found.missing
    if found.text is None:
        return 0.0, found.missing
    if len(found.text) > MAX_ANSWER_CHARS:
        return 0.0, ""
    return (1.0 if equal(gold, canonical(found.text)) else 0.0), ""


def equal(gold: str, predicted: str) -> bool:
    """Are two canonical answers (``answer_forms.canonical``) the same answer? Option letters and
    times of day by their own rules, then each percent form by string, then by math-verify."""
    from math_verify import verify

    letters = option_letters(gold, predicted)
    if letters is not None and letters[1] is not None:
        return letters[0] == letters[1]
    clock = times(gold, predicted)
    if clock is not None:
        return clock[0] is not None and clock[0] == clock[1]
    gold, predicted = right_hand_sides(gold, predicted)
    for g, p in percent_forms(gold, predicted):
        if normalise(g) == normalise(p):
            return True
        gold_parsed, predicted_parsed = _parse(_math(g)), _parse(f"$\\boxed{{{p}}}$")
        if gold_parsed and predicted_parsed and verify(gold_parsed, predicted_parsed, timeout_seconds=None):
            return True
    return False


def warm_up() -> None:
    """Run once in each worker before it takes items: import math-verify and sympy's parser, and
    silence math-verify's warning that its own timeouts are off (the pool's hard timeout applies)."""
    import logging

    import math_verify.grader
    import math_verify.parser

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    math_verify.parser.TIMEOUT_WARNING_SHOWN = math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    assert score_item(("\\frac{1}{2}", "\\boxed{0.5}")) == (1.0, ""), "math-verify does not work here"


class MathCorrectness(CheckedReward):
    """Callable reward; see the module docstring."""

    def __init__(
        self,
        answer_column: str = "answer",
        grader: str = "ssp",
        timeout: float = 10.0,
        workers: int | None = None,
        memory_mb: int = 2048,
        max_failure_rate: float = 0.25,
    ):
        super().__init__(max_failure_rate)
        self.__name__ = "math_correctness"  # TRL logs rewards under their __name__
        if grader not in GRADERS:
            raise ValueError(f"grader: unknown grader {grader!r}; known: {', '.join(GRADERS)}")
        self.answer_column = answer_column
        self.grader = grader
        self.target, self.grades_truncated = GRADERS[grader]
        self.timeout = timeout
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.memory_mb = memory_mb
        self._pool: HardTimeoutPool | None = None

    @property
    def pool(self) -> HardTimeoutPool:
        if self._pool is None:
            self._pool = HardTimeoutPool(self.target, self.workers, self.timeout, self.memory_mb)
        return self._pool

    def _outcomes(self, completions: list, **columns) -> list[tuple[str, float | None, str, str]]:
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
                score, missing = outcome.value
                out.append((SCORED if score is not None else UNSCORABLE, score, "", missing))
            else:
                out.append((TIMEOUT if outcome.status == POOL_TIMEOUT else ERROR, None, outcome.message, ""))
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
