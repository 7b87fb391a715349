"""What became of each scored item, and the rule that no failure passes for a score.

A reward that can fail for reasons other than the answer (a verifier that hangs, a worker or a
sandbox that cannot start, a bug) subclasses ``CheckedReward`` and returns, per item, one of

    scored      a number: 1.0 / 0.0 (or a fraction for partial credit)
    unscorable  None: the *reference* cannot be scored (a gold answer that does not parse,
                malformed tests); a property of the data, counted
    timeout     None: the verifier outlived its hard timeout on this item
    error       None: the verifier raised, its worker died or could not run the item

A scored 0.0 may also say why: the completion held *no answer* (``reward.math_answer``:
no final answer, or reasoning cut inside ``<think>``). Those are counted as ``no_answer_rate``
beside the failure rates, so a policy that stops answering shows in the logs.

Timed-out and errored items are never 0.0: they are ``None`` (TRL turns None into NaN; MGPO and
Pass@k count them as not correct) and they are counted where a researcher looks:

- ``reward.last`` (a ``CallReport``) after each call and ``reward.totals`` over the reward's life;
  the probe and eval stages put the rates in their tables;
- inside TRL trainers (which pass ``log_metric``), ``rewards/<name>/timeout_rate``,
  ``error_rate`` and ``unscorable_rate`` every step (W&B and ``log_history``);
- a warning in the log with the first message, at most once a minute per reward;
- a call where every item failed, or more than ``max_failure_rate`` of them, raises
  ``RewardError`` naming the reward, the counts and the first message: the stage stops.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from ssp.core.errors import SSPError

SCORED, UNSCORABLE, TIMEOUT, ERROR = "scored", "unscorable", "timeout", "error"
STATUSES = (SCORED, UNSCORABLE, TIMEOUT, ERROR)
WARN_EVERY_SECONDS = 60.0

log = logging.getLogger("ssp")


class RewardError(SSPError):
    """A reward could not score a call's items (too many timeouts or errors)."""


@dataclass
class CallReport:
    """The statuses of one call's items, in order, the first failure's message, and per item why
    it held no answer (``""`` if it did; empty for rewards that do not tell)."""

    statuses: list[str] = field(default_factory=list)
    first_failure: str = ""
    missing: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(self.statuses)
        return {s: c.get(s, 0) for s in STATUSES}

    @property
    def failed(self) -> int:
        c = self.counts
        return c[TIMEOUT] + c[ERROR]

    @property
    def no_answer(self) -> int:
        return sum(1 for m in self.missing if m)

    def rates(self) -> dict[str, float]:
        n = max(1, len(self.statuses))
        rates = {f"{s}_rate": v / n for s, v in self.counts.items() if s != SCORED}
        if self.missing:
            rates["no_answer_rate"] = self.no_answer / n
        return rates


def plain_statuses(scores: list) -> list[str]:
    """The statuses of a plain reward function's scores (it fails by raising): None is
    unscorable, anything else scored."""
    return [UNSCORABLE if s is None else SCORED for s in scores]


def call_report(reward, scores: list) -> CallReport:
    """The report of the reward's last call: its own for a ``CheckedReward``, else
    ``plain_statuses``."""
    report = getattr(reward, "last", None)
    if isinstance(report, CallReport) and len(report.statuses) == len(scores):
        return report
    return CallReport(plain_statuses(scores))


class CheckedReward:
    """Base class: subclasses set ``__name__`` and implement ``_outcomes``."""

    __name__ = "reward"
    max_failure_rate: float = 0.25

    def __init__(self, max_failure_rate: float = 0.25):
        if not 0 <= max_failure_rate <= 1:
            raise ValueError(f"max_failure_rate must be in [0, 1], got {max_failure_rate}")
        self.max_failure_rate = max_failure_rate
        self.last = CallReport()
        self.totals: Counter = Counter()
        self._warned_at = -WARN_EVERY_SECONDS

    def _outcomes(self, completions: list, **columns) -> list[tuple]:
        """(status, score, message) per completion, or (status, score, message, missing) from a
        reward that tells why a completion held no answer."""
        raise NotImplementedError

    def __call__(self, completions: list, **columns) -> list[float | None]:
        outcomes = [o if len(o) == 4 else (*o, None) for o in self._outcomes(completions, **columns)]
        statuses = [s for s, _, _, _ in outcomes]
        first = next((f"{s}: {m}" for s, _, m, _ in outcomes if s in (TIMEOUT, ERROR)), "")
        missing = [m or "" for _, _, _, m in outcomes] if any(o[3] is not None for o in outcomes) else []
        self.last = CallReport(statuses, first, missing)
        self.totals.update(statuses)
        self.totals["calls"] += 1
        log_metric = columns.get("log_metric")
        if callable(log_metric):  # TRL trainers: averaged per logging step across processes
            for key, value in self.last.rates().items():
                log_metric(f"rewards/{self.__name__}/{key}", value)
        self._check(self.last)
        return [score if status == SCORED else None for status, score, _, _ in outcomes]

    def _check(self, report: CallReport) -> None:
        n, failed = len(report.statuses), report.failed
        if not failed:
            return
        c = report.counts
        summary = (
            f"reward {self.__name__}: {failed} of {n} items failed ({c[TIMEOUT]} timed out, "
            f"{c[ERROR]} errored)"
        )
        if failed == n or failed > self.max_failure_rate * n:
            raise RewardError(
                f"{summary}, over max_failure_rate={self.max_failure_rate:g}: stopping rather than "
                f"scoring them. First failure: {report.first_failure} (docs/rewards.md, 'Failures')"
            )
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            total = self.totals[TIMEOUT] + self.totals[ERROR]
            log.warning(
                "%s; scored None (not correct). %d failures in %d calls so far. First: %s",
                summary,
                total,
                self.totals["calls"],
                report.first_failure,
            )
