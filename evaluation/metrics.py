"""Benchmark metrics from n scored samples per problem.

- Pass@1: the mean accuracy over all samples (what the report calls Pass@1);
- Pass@k: the unbiased estimator of ``sampling/pass_at_k.py``, averaged over problems;
- cons@n: majority vote. Each sample's final answer (``vote_key``) is one vote; the problem
  counts as solved when the most-voted answer is correct. Correct samples all vote for the gold
  answer (they were verified equivalent to it). Departure from a full equivalence check: two
  *wrong* answers are the same vote only when equal as normalised strings ("1/2" and "0.5"
  split their votes). Samples without an answer do not vote; ties go to the answer reached
  first (lowest sample index); a problem where nobody voted counts as unsolved.
- truncation rate (share of samples that hit max_new_tokens) and mean response length;
- ``no_answer_rate``: the share of samples that held no final answer (``reward/math_answer.py``:
  no ``\\boxed{}`` or final-answer line, or cut inside ``<think>``), from rewards that tell;
- ``skipped``: problems whose prompt did not fit the model's context (never sampled, counted
  as not solved);
- the share of samples the reward could not score, by cause (``reward/outcome.py``):
  ``unscorable_rate``, ``timeout_rate``, ``error_rate``. They count as not correct above.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ssp.reward.answer_forms import canonical
from ssp.reward.math_answer import final_answer, normalise
from ssp.reward.multiple_choice import choice_letter
from ssp.reward.outcome import ERROR, TIMEOUT, UNSCORABLE, plain_statuses
from ssp.sampling.pass_at_k import pass_at_k

GOLD = "\0gold"  # the vote of every correct sample


def vote_key(text: str, reward: str) -> str | None:
    """The final answer a completion votes for, or None."""
    if reward == "multiple_choice":
        return choice_letter(text)
    answer = final_answer(text).text
    if answer is None or len(answer) > 1000:
        return None
    return normalise(canonical(answer))


def majority_correct(keys: list[str | None], scores: list[float | None]) -> bool:
    """cons@n of one problem (see the module docstring)."""
    votes = [GOLD if s == 1.0 else k for k, s in zip(keys, scores, strict=True)]
    counts = Counter(v for v in votes if v is not None)
    if not counts:
        return False
    first = {}
    for i, v in enumerate(votes):
        first.setdefault(v, i)
    winner = max(counts, key=lambda v: (counts[v], -first[v]))
    return winner == GOLD


def summarize(problems: list[dict[str, Any]], ks: tuple[int, ...], votes: bool) -> dict[str, Any]:
    """Metrics over problems; each problem is ``{"domain", "scores", "keys", "tokens", "finish"}``
    and optionally ``"statuses"`` (the reward's status per sample; without it, a None score is
    unscorable) and ``"missing"`` (per sample, why it held no answer, ``""`` if it did)."""
    n = len(problems[0]["scores"])
    correct = [sum(1 for s in p["scores"] if s == 1.0) for p in problems]
    samples = n * len(problems)
    out: dict[str, Any] = {
        "problems": len(problems),
        "samples_per_problem": n,
        "pass@1": sum(correct) / samples,
        **{f"pass@{k}": sum(pass_at_k(n, c, k) for c in correct) / len(problems) for k in ks if k > 1},
        f"cons@{n}": (
            sum(majority_correct(p["keys"], p["scores"]) for p in problems) / len(problems) if votes else None
        ),
        "truncated": sum(f == "length" for p in problems for f in p["finish"]) / samples,
        "mean_tokens": sum(t for p in problems for t in p["tokens"]) / samples,
    }
    statuses = Counter(st for p in problems for st in p.get("statuses") or plain_statuses(p["scores"]))
    out["unscorable"] = statuses[UNSCORABLE]
    missing = [m for p in problems for m in p.get("missing") or []]
    out["no_answer_rate"] = sum(1 for m in missing if m) / samples if missing else None
    out["skipped"] = sum(1 for p in problems if p["finish"] and p["finish"][0] == "prompt_too_long")
    out.update({f"{st}_rate": statuses[st] / samples for st in (UNSCORABLE, TIMEOUT, ERROR)})
    domains = sorted({p["domain"] for p in problems})
    if len(domains) > 1:
        out["pass@1_per_domain"] = {
            d: sum(c for p, c in zip(problems, correct, strict=True) if p["domain"] == d)
            / (n * sum(1 for p in problems if p["domain"] == d))
            for d in domains
        }
    return out
