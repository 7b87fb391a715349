"""``by_domain``: each item scored by the reward of its row's domain (verl's ``default_compute_score``
picks its scorer by ``data_source`` the same way).

    rewards:
      - name: by_domain
        correctness: true
        options:
          domains: {code: {name: code_tests, options: {test_seconds: 2}}}
          default: math_correctness          # every other domain

    reward(completions, domain=[...], answer=[...], tests=[...], fn_name=[...])

The items of each domain go to their reward in one call, with their own columns, so a code
reward sees only code rows' tests and a math reward only math rows' answers; statuses, failure
messages and "no answer" reasons come back in the items' order (``reward.last``). Failures are
counted over the whole call against ``by_domain``'s own ``max_failure_rate`` (one sandbox error
among 3 code items of a 300-item call is 0.3%, not a third). A domain with neither an entry
nor a default is an error naming it, never a score.

Truncated completions: ``grades_truncated`` is the one rule of every domain's reward when they
agree; when they differ (math's graders zero a truncated completion, ``code_tests`` runs whatever
program it holds), ``truncation_graded`` says per item of the last call, and
``sampling.scoring.zero_truncated`` follows it. The RL trainer needs one rule per reward: a
``by_domain`` reward mixing the two is refused there (``stages/rl.py``); give such phases one
domain each, as the report's curriculum does.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from ssp.reward.outcome import SCORED, CallReport, CheckedReward, RewardError, call_report
from ssp.reward.registry import get_reward


def _spec(value: Any, where: str) -> tuple[str, dict[str, Any]]:
    if isinstance(value, str):
        return value, {}
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        unknown = set(value) - {"name", "options"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)} (name, options)")
        return value["name"], dict(value.get("options") or {})
    raise ValueError(f"{where}: a reward name or {{name, options}}, got {value!r}")


class ByDomain(CheckedReward):
    __name__ = "by_domain"

    def __init__(
        self, domains: dict[str, Any] | None = None, default: Any = None, max_failure_rate: float = 0.25
    ):
        super().__init__(max_failure_rate)
        if not domains and default is None:
            raise ValueError("needs domains: {domain: reward} and/or a default reward")
        if any(_spec(v, f"domains.{d}")[0] == "by_domain" for d, v in (domains or {}).items()):
            raise ValueError("a domain's reward cannot itself be by_domain")
        self.specs = {d: _spec(v, f"domains.{d}") for d, v in (domains or {}).items()}
        self.default = _spec(default, "default") if default is not None else None
        self._built: dict[tuple, Any] = {}
        rewards = [self._reward(d) for d in self.specs] + ([self._reward(None)] if self.default else [])
        rules = {getattr(r, "grades_truncated", True) for r in rewards}
        self.grades_truncated = rules.pop() if len(rules) == 1 else None  # None: per item
        self.truncation_graded: list[bool] = []

    def _reward(self, domain: str | None):
        name, options = self.specs[domain] if domain in self.specs else self.default
        key = (name, json.dumps(options, sort_keys=True, default=str))
        if key not in self._built:
            self._built[key] = get_reward(name, **options)
        return self._built[key]

    def _outcomes(self, completions: list, **columns) -> list[tuple]:
        domains = columns.get("domain")
        if domains is None or len(domains) != len(completions):
            raise RewardError("reward by_domain: needs each item's domain (a 'domain' column)")
        groups: dict[str, list[int]] = defaultdict(list)
        for i, d in enumerate(domains):
            groups[str(d)].append(i)
        missing = [d for d in groups if d not in self.specs and self.default is None]
        if missing:
            raise RewardError(
                f"reward by_domain: no reward for domain(s) {sorted(missing)} (options: domains "
                f"{sorted(self.specs)}, no default)"
            )
        outcomes: list[tuple] = [()] * len(completions)
        graded = [True] * len(completions)
        for domain, items in groups.items():
            reward = self._reward(domain)
            sub = {  # each column cut to the domain's items; anything else (TRL's log_metric) as it is
                k: [v[i] for i in items] if isinstance(v, list) and len(v) == len(completions) else v
                for k, v in columns.items()
            }
            if isinstance(reward, CheckedReward):  # its outcomes, not its call: the failure limit is
                # by_domain's, over the whole call, not each domain's slice (1 error in 3 code items)
                for i, o in zip(items, reward._outcomes([completions[i] for i in items], **sub), strict=True):
                    outcomes[i] = o if len(o) == 4 else (*o, None)
            else:
                scores = reward([completions[i] for i in items], **sub)
                report: CallReport = call_report(reward, scores)
                for j, i in enumerate(items):
                    status = report.statuses[j]
                    message = report.first_failure if status != SCORED else ""
                    outcomes[i] = (status, scores[j], message, report.missing[j] if report.missing else None)
            for i in items:
                graded[i] = getattr(reward, "grades_truncated", True)
        self.truncation_graded = graded
        return outcomes

    def close(self) -> None:
        for reward in self._built.values():
            if hasattr(reward, "close"):
                reward.close()


def code_tests_options(name: str, options: dict[str, Any]) -> list[dict[str, Any]]:
    """The options of every ``code_tests`` reward that ``name`` with ``options`` builds (itself, or
    a domain's of a ``by_domain``): what preflight checks the sandbox for."""
    if name == "code_tests":
        return [dict(options)]
    if name != "by_domain":
        return []
    specs = [
        *(options.get("domains") or {}).values(),
        *([options["default"]] if options.get("default") else []),
    ]
    found = []
    for value in specs:
        try:
            sub, sub_options = _spec(value, "by_domain")
        except ValueError:
            continue  # a malformed entry: the reward says so when it is built
        found += code_tests_options(sub, sub_options)
    return found
