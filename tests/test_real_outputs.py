"""The math verifier on real model outputs (tests/fixtures/real_outputs: completions of real models
from public evaluation outputs, each with the label of the grader its repository used).

Every row where ``math_correctness`` (the default ``ssp`` grader) and the label disagree must be in
``reviewed_math.jsonl``, read by hand and classified: ``ours_wrong``, ``label_wrong``, ``policy``
(the output holds no final answer by docs/rewards.md's rule, and the label's grader read one from
it anyway) or ``ambiguous``. A new disagreement fails this test until someone has read it; a
reviewed one that no longer disagrees fails it too (the review is stale). Ours wrong must stay at
or under 0.5% of the rows.
"""

from __future__ import annotations

import pytest

from benchmarks.grader_agreement import grade, load

from .helpers.machine import needs_bwrap

VERDICTS = {"ours_wrong", "label_wrong", "policy", "ambiguous"}


@pytest.mark.slow
def test_every_disagreement_with_real_labels_is_reviewed():
    rows, reviewed = load()
    scores, missing = grade(rows, "ssp")
    assert all(s is not None for s in scores), "a real gold answer could not be scored"
    disagree = {r["id"]: s for r, s in zip(rows, scores, strict=True) if (s == 1.0) != bool(r["label"])}
    unreviewed = sorted(set(disagree) - set(reviewed))
    assert not unreviewed, (
        f"{len(unreviewed)} new disagreements with the real labels, not reviewed: {unreviewed[:20]}; read each "
        "(python benchmarks/grader_agreement.py --disagreements ssp) and classify it in reviewed_math.jsonl"
    )
    stale = sorted(i for i in reviewed if i not in disagree or reviewed[i]["ours"] != disagree[i])
    assert not stale, (
        f"reviewed rows that no longer disagree (or now score otherwise): {stale}; update the review"
    )
    assert {r["verdict"] for r in reviewed.values()} <= VERDICTS
    wrong = [i for i, r in reviewed.items() if r["verdict"] == "ours_wrong"]
    assert len(wrong) <= 0.005 * len(rows), f"ours wrong on {len(wrong)} of {len(rows)}: {wrong}"
    # the answer policy is visible: every 'policy' row is one ssp reads no answer from
    by_id = dict(zip((r["id"] for r in rows), missing, strict=True))
    assert all(by_id[i] for i, r in reviewed.items() if r["verdict"] == "policy")


@pytest.mark.slow
@needs_bwrap
def test_code_reward_agrees_with_livecodebenchs_official_verdicts():
    """A seeded sample of real LiveCodeBench v6 programs (both verdicts, stdin and functional) graded by
    code_tests with its default harness: every verdict equals the official runner's, or the row is
    reviewed in reviewed_code.jsonl. The whole set: python benchmarks/code_agreement.py."""
    from benchmarks.code_agreement import grade as grade_code
    from benchmarks.code_agreement import load as load_code

    rows, reviewed = load_code(limit=24)
    assert {r["label"] for r in rows} == {True, False} and len(rows) == 24
    scores = grade_code(rows)
    disagree = [r["id"] for r, s in zip(rows, scores, strict=True) if (s == 1.0) != r["label"]]
    assert not [i for i in disagree if i not in reviewed], (
        f"unreviewed disagreements with LiveCodeBench: {disagree}"
    )
