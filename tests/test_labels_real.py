"""Domain labels on real data: the 5,000 MATH test problems (tests/fixtures/decontamination/) with
MATH's own subjects as the truth, mapped to four recipe domains and Precalculus left outside (null),
as a recipe's label_map would. The classifier is trained and measured by the build's own function
on a seeded 80/20 split; the numbers are in docs/data.md."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from ssp.data_pipeline.labels import OUTSIDE, held_out_accuracy, mapped_label

FIXTURE = Path(__file__).parent / "fixtures" / "decontamination" / "math_test_vs_benchmarks.jsonl.gz"
# MATH subject -> domain, shared with benchmarks/corpus_build.py
MAP = {
    k: v for k, v in json.loads((FIXTURE.parent / "math_subjects.json").read_text()).items() if k[0] != "_"
}


@pytest.fixture(scope="module")
def measured():
    rows = [json.loads(line) for line in gzip.open(FIXTURE, "rt", encoding="utf-8")]
    pool = [r for r in rows if r["role"] == "pool"]
    labels = [mapped_label({"source_label": r["subject"]}, MAP) for r in pool]
    return held_out_accuracy(
        [r["problem"] for r in pool], labels, [r["id"] for r in pool], threshold=None, seed=0
    )


def test_labels_reach_the_targets_at_the_chosen_threshold(measured):
    _, report = measured
    assert report["targets_met"] and 0.5 <= report["threshold"] < 0.99
    assert report["accuracy_at_threshold"] >= 0.92
    for domain, v in report["per_domain"].items():
        if domain != OUTSIDE:
            assert v["precision_at_threshold"] >= 0.85, (domain, v)
            assert v["labelled_at_threshold"] >= 0.3 * v["rows"], (domain, v)  # minorities still labelled
    assert report["coverage_at_threshold"] >= 0.4  # the price of precision: the rest abstains (docs/data.md)
    shares = [v["labelled_at_threshold"] / v["rows"] for d, v in report["per_domain"].items() if d != OUTSIDE]
    assert max(shares) <= 1.5 * min(shares), shares  # minority domains are not starved (classes weighted)


def test_a_subject_mapped_to_null_is_learnt_as_outside(measured):
    """Precalculus rows (mapped to null) train an outside class: few of the held-out ones get a domain."""
    _, report = measured
    outside = report["per_domain"][OUTSIDE]
    assert outside["rows"] >= 80 and outside["accuracy"] >= 0.6
    assert report["outside_let_in_at_threshold"] <= 0.1 * outside["rows"]


def test_label_maps_match_by_prefix():
    topics = {
        "Mathematics -> Algebra -> *": "algebra",
        "Mathematics -> Precalculus -> *": None,
        "Mathematics -> Precalculus -> Limits": "calculus",  # exact beats prefix
        "Mathematics -> *": "algebra",  # a longer prefix beats a shorter one
    }
    label = lambda t: mapped_label({"source_label": t}, topics)  # noqa: E731
    assert label("Mathematics -> Algebra -> Linear Algebra -> Matrices") == "algebra"
    assert label("Mathematics -> Precalculus -> Functions") == OUTSIDE
    assert label("Mathematics -> Precalculus -> Limits") == "calculus"
    assert label("Mathematics -> Geometry -> Plane Geometry") == "algebra"
    assert label("Physics -> Mechanics") is None
