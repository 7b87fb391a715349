"""The reference recipe's sources (recipes/vibethinker_1p5b.yaml) read rows in their published layouts
(tests/fixtures/corpus/layouts/, SOURCES.md there: real NuminaMath-1.5 and MATH rows; OpenR1-Math-220k
and DeepMath-103K rows written to their layout because no real row is reachable here) through the
recipe's own source definitions, and a build keeps a multi-solution source's checked traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssp.config.recipe import load_recipe
from ssp.core.corpus import iter_jsonl
from ssp.data_pipeline.labels import OUTSIDE, mapped_label
from ssp.data_pipeline.sources import _map

LAYOUTS = Path(__file__).parent / "fixtures" / "corpus" / "layouts"
RECIPE = Path(__file__).parents[1] / "recipes" / "vibethinker_1p5b.yaml"
FILES = {
    "openr1": "openr1.jsonl",
    "numina": "numinamath15.jsonl",
    "math": "math_lighteval.jsonl",
    "deepmath": "deepmath.jsonl",
    "taco": "../code_layouts/taco.jsonl",  # real rows (code_layouts/SOURCES.md)
    "deepcoder": "../code_layouts/deepcoder_rllm_precursor.jsonl",
}


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (LAYOUTS / FILES[name]).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def sources():
    return {s.name: s for s in load_recipe(RECIPE).data.sources}


def test_every_source_of_the_reference_recipe_has_a_layout_fixture(sources):
    assert set(sources) == set(FILES)


@pytest.mark.parametrize("name", list(FILES))
def test_rows_map_to_a_problem_an_answer_and_a_known_label(sources, name):
    src = sources[name]
    for i, raw in enumerate(_rows(name)):
        row = _map(src, raw, i)
        graded = row["answer"].strip() or json.loads(row.get("tests") or "[]")  # a code row: its tests
        assert row["problem"].strip() and graded, (name, i, row)
        label = row.get("source_label")
        assert label, (name, i)  # every source of the recipe names a label column, or its domain
        domain = mapped_label(row, src.label_map)
        domains = set(load_recipe(RECIPE).data.domains) | {OUTSIDE}
        assert domain is None or domain in domains, (name, label, domain)


def test_openr1_keeps_only_the_traces_math_verify_marked_correct_and_finished(sources):
    rows = [_map(sources["openr1"], raw, i) for i, raw in enumerate(_rows("openr1"))]
    raw = _rows("openr1")
    for r, x in zip(rows, raw, strict=True):
        want = [g for g, ok in zip(x["generations"], x["correctness_math_verify"], strict=True) if ok]
        assert r["solutions"] == [g.strip() for g in want]
        assert all("</think>" in s for s in r["solutions"])
    assert [len(r["solutions"]) for r in rows] == [2, 1, 2]


def test_deepmath_traces_get_their_think_and_unfinished_ones_are_left_out(sources):
    rows = [_map(sources["deepmath"], raw, i) for i, raw in enumerate(_rows("deepmath"))]
    assert [len(r["solutions"]) for r in rows] == [3, 2, 3]
    assert rows[1]["solutions_count"] == {"read": 3, "unverified": 0, "unfinished": 1}
    assert all(s.startswith("<think>\n") and s.count("</think>") == 1 for r in rows for s in r["solutions"])
    labels = [mapped_label(r, sources["deepmath"].label_map) for r in rows]
    assert labels == ["calculus", "calculus", "statistics"]  # by prefix and exact topic paths


def test_a_build_keeps_a_multi_solution_sources_traces_for_sft(tmp_path):
    """The fixtures' recipe with an OpenR1-layout source first: its rows that reach SFT carry their
    verified traces (chosen by the diversity rule, at most data.teacher.solutions_per_problem), not the
    one human solution, and no teacher is configured."""
    from ssp.data_pipeline.sources import Source
    from ssp.launch.runner import run_pipeline

    fix = LAYOUTS.parent
    recipe = load_recipe(
        Path(__file__).parents[1] / "recipes" / "corpus_fixtures.yaml",
        [
            f"output_root={tmp_path}",
            f"data.sources[0].path={fix / 'numinamath_1p5.jsonl'}",
            f"data.sources[1].path={fix / 'math_hendrycks.jsonl'}",
            f"eval.benchmarks[0].source={fix / 'math500.jsonl'}",
            f"eval.benchmarks[1].source={fix / 'aime24.jsonl'}",
            "data.teacher.solutions_per_problem=1",
        ],
    )
    recipe.data.sources.insert(
        0,
        Source(
            name="openr1",
            path=str(LAYOUTS / "openr1.jsonl"),
            fields={
                "problem": "problem",
                "answer": "answer",
                "solution": "solution",
                "label": "problem_type",
                "id": "uuid",
            },
            solution_columns=["generations"],
            solutions_verified="correctness_math_verify",
            label_map={"Algebra": "algebra", "Geometry": "geometry", "Number Theory": None},
        ),
    )
    run_pipeline(recipe)
    data = recipe.run_dir / "data"
    sft = [r for r in iter_jsonl(data / "sft.jsonl") if r["source"] == "openr1"]
    elsewhere = sum(
        1 for split in ("eval.jsonl", "rl.jsonl") for r in iter_jsonl(data / split) if r["source"] == "openr1"
    ) + sum(1 for p in (data / "probe").glob("*.jsonl") for r in iter_jsonl(p) if r["source"] == "openr1")
    assert len(sft) + elsewhere == 2  # the Number Theory row is outside the domains
    card = json.loads((data / "data_card.json").read_text())
    assert card["sources"]["openr1"]["solutions"] == {
        "read": 7,
        "kept": 5,
        "unverified": 2,
        "unfinished": 0,
        "problems_without_one": 0,
    }  # counted by hand from the fixture: 3 + 2 + 2 traces, one wrong and one cut short marked false
    assert (
        "openr1's own solutions (rows that passed the filters): 7 read, 5 kept"
        in (data / "data_card.md").read_text()
    )
    raw = {r["uuid"]: r for r in _rows("openr1")}
    for r in sft:
        assert r["solutions_origin"] == "source" and len(r["solutions"]) == 1
        verified = [
            g.strip()
            for g, ok in zip(
                raw[r["source_id"]]["generations"],
                raw[r["source_id"]]["correctness_math_verify"],
                strict=True,
            )
            if ok
        ]
        assert r["solutions"][0] in verified


def test_a_teacher_with_every_sft_row_traced_samples_nothing_and_passes_the_traces_through(tmp_path):
    """A teacher is configured but every SFT problem already carries its source's verified traces
    (``solutions_origin: source``): the teacher step samples nothing (its model path does not exist, so
    any load would fail), writes the traced rows unchanged and counts them in its card entry."""
    from ssp.core.corpus import JsonlWriter
    from ssp.data_pipeline.build import BuildOptions, Plan, TeacherOptions, _teach

    traced = [
        {
            "id": f"t{i}",
            "problem": f"Problem {i}",
            "answer": str(i),
            "domain": "algebra",
            "solutions": [f"<think>a{i}</think> \\boxed{{{i}}}", f"<think>b{i}</think> \\boxed{{{i}}}"],
            "solutions_origin": "source",
        }
        for i in range(3)
    ]
    work = tmp_path / "build"
    work.mkdir()
    with JsonlWriter(tmp_path / "sft.jsonl") as out:
        for r in traced:
            out.write(r)
    plan = Plan(
        [],
        BuildOptions(),
        ["algebra"],
        {},
        0,
        7,
        {},
        teacher=TeacherOptions(model=str(tmp_path / "no-such-teacher")),
    )
    splits = {"sft": tmp_path / "sft.jsonl"}
    given = dict(splits)
    after, card = _teach(plan, work, splits)
    assert splits == given  # the step returns what it makes, and leaves its input alone
    assert list(iter_jsonl(after["sft"])) == traced
    assert card["source_solutions_kept_for"] == 3 and card["unsolved"] == 0
    assert card["solutions_per_problem"] == {}  # nothing sampled, nothing chosen
    assert not (work / "teacher").exists()
