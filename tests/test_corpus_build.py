"""The corpus builder (data.source: build) on hand-written fixtures in the public layouts of
NuminaMath-1.5 and MATH (tests/fixtures/corpus/), decontaminated against MATH-500 and AIME 2024
fixtures. Expected drops are written out by hand below from the fixture rows, not computed by the
code under test; card numbers are recounted here from the files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ssp.config.recipe import load_recipe
from ssp.core.corpus import PROBLEM_FIELDS, SFT_FIELDS, iter_jsonl, load_rows
from ssp.core.errors import DataError, RecipeError
from ssp.data_pipeline import build as build_mod
from ssp.data_pipeline.decontaminate import Decontaminator
from ssp.data_pipeline.dedup import Deduplicator
from ssp.data_pipeline.filters import RULES, Limits, first_failed
from ssp.data_pipeline.labels import held_out_accuracy
from ssp.data_pipeline.sources import Source, read_source
from tests.conftest import ROOT, fast_recipe

FIX = ROOT / "tests" / "fixtures" / "corpus"
NUMINA, MATH = FIX / "numinamath_1p5.jsonl", FIX / "math_hendrycks.jsonl"


def _raw(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fixtures_recipe(root: Path, *extra: str):
    return load_recipe(
        ROOT / "recipes" / "corpus_fixtures.yaml",
        [
            f"output_root={root}",
            f"data.sources[0].path={NUMINA}",
            f"data.sources[1].path={MATH}",
            f"eval.benchmarks[0].source={FIX / 'math500.jsonl'}",
            f"eval.benchmarks[1].source={FIX / 'aime24.jsonl'}",
            *extra,
        ],
    )


# Every planted row of the fixtures and what must drop it: (source, 0-based row) -> (step, rule).
PLANTED = {
    ("numina", 25): ("filter", "proof"),
    ("numina", 26): ("filter", "multiple_choice"),
    ("numina", 27): ("filter", "multi_part"),
    ("numina", 28): ("filter", "figure"),
    ("numina", 29): ("filter", "no_answer"),  # answer "notfound"
    ("numina", 30): ("filter", "where"),  # problem_is_valid: "No"
    ("numina", 31): ("filter", "true_false"),
    ("numina", 32): ("filter", "too_long"),
    ("numina", 33): ("dedup", "exact"),  # row 0 with case and spacing changed
    ("numina", 34): ("dedup", "near"),  # row 13 with its last words changed
    ("numina", 35): ("decontaminate", "verbatim"),  # MATH-500 intermediate_algebra/101, verbatim
    ("numina", 36): ("decontaminate", "numbers"),  # AIME 2024 #60 with every number changed
    ("numina", 14): ("label", "outside_domains"),  # Number Theory -> null
    ("numina", 15): ("label", "outside_domains"),
    ("numina", 16): ("label", "outside_domains"),
    ("math", 16): ("filter", "figure"),
    ("math", 21): ("filter", "no_answer"),  # no \boxed{} in the solution
    ("math", 18): ("decontaminate", "verbatim"),  # MATH-500 counting/77, case and spacing changed
    ("math", 19): ("decontaminate", "reworded"),  # MATH-500 geometry/250, first sentence reworded
    ("math", 13): ("label", "outside_domains"),
    ("math", 20): ("label", "outside_domains"),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from ssp.launch.runner import run_pipeline

    recipe = fixtures_recipe(tmp_path_factory.mktemp("corpus"))
    run_pipeline(recipe)
    return recipe.run_dir / "data"


def _drops(data: Path) -> dict[tuple[str, int], tuple[str, str]]:
    found = {}
    for path in sorted((data / "build" / "dropped").glob("*.jsonl")):
        step = path.stem.split("-")[0]
        for r in iter_jsonl(path):
            found[(r["source"], int(r["source_id"]))] = (step, r["rule"])
    for r in iter_jsonl(data / "decontamination_matches.jsonl"):
        source, sid = r["uid"].split("/")
        found[(source, int(sid))] = ("decontaminate", r["rule"])
    return found


def test_every_planted_row_is_dropped_by_its_rule_and_nothing_else(built):
    assert _drops(built) == PLANTED


def test_decontamination_matches_name_the_benchmark_problem(built):
    matches = {
        r["uid"]: (r["benchmark"], r["benchmark_id"])
        for r in iter_jsonl(built / "decontamination_matches.jsonl")
    }
    assert matches == {
        "numina/35": ("math500", "test/intermediate_algebra/101.json"),
        "numina/36": ("aime24", "60"),
        "math/18": ("math500", "test/counting_and_probability/77.json"),
        "math/19": ("math500", "test/geometry/250.json"),
    }


def test_card_numbers_equal_recounts(built):
    card = json.loads((built / "data_card.json").read_text())
    raw = {"numina": _raw(NUMINA), "math": _raw(MATH)}
    drops = Counter((src, step, rule) for (src, _), (step, rule) in PLANTED.items())
    splits = {
        p.stem if p.parent == built else f"probe/{p.stem}": list(iter_jsonl(p))
        for p in [*built.glob("*.jsonl"), *(built / "probe").glob("*.jsonl")]
        if p.name != "decontamination_matches.jsonl"
    }
    kept = Counter(r["source"] for rows in splits.values() for r in rows)
    for name, s in card["sources"].items():
        assert s["read"] == len(raw[name])
        assert s["filtered"] == {
            rule: n for (src, step, rule), n in drops.items() if src == name and step == "filter"
        }
        assert s["duplicates"] == {
            rule: n for (src, step, rule), n in drops.items() if src == name and step == "dedup"
        }
        assert s["contaminated"] == sum(
            n for (src, step, _), n in drops.items() if src == name and step == "decontaminate"
        )
        assert (
            sum(s["labelled"].values())
            == kept[name]
            == len(raw[name]) - sum(n for (src, *_), n in drops.items() if src == name)
        )
    assert card["splits"] == {
        name: dict(sorted(Counter(r["domain"] for r in rows).items())) for name, rows in splits.items()
    }
    assert card["decontamination"]["benchmarks"] == {
        "math500": {"problems": 4, "verbatim": 2, "numbers": 0, "reworded": 1},
        "aime24": {"problems": 2, "verbatim": 0, "numbers": 1, "reworded": 0},
    }
    clf = card["labels"]["classifier"]  # measured on held-out fixture rows with a source label
    source_labelled = sum(s["labelled"].get("source", 0) for s in card["sources"].values())
    outside = card["labels"]["dropped"]["outside_domains"]  # mapped to null: the outside class
    assert clf["train_rows"] + clf["held_out_rows"] == source_labelled + outside == 34 + 5
    assert sum(v["rows"] for v in clf["per_domain"].values()) == clf["held_out_rows"] > 0
    assert card["labels"]["origin"] == {"source": 34, "classifier": 4}
    assert "| numina | Apache-2.0 | 37 |" in (built / "data_card.md").read_text()
    assert (built / "data_card.png").stat().st_size > 1000


def test_splits_are_disjoint_labelled_and_load_in_the_sft_stage(built):
    domains = {"algebra", "geometry", "calculus", "statistics"}
    ids = []
    for split in ("eval", "rl"):
        rows = load_rows(built / f"{split}.jsonl", PROBLEM_FIELDS, split, domains=domains)
        assert Counter(r["domain"] for r in rows) == Counter({d: 1 for d in domains})
        ids += [r["id"] for r in rows]
    for d in domains:
        rows = load_rows(built / "probe" / f"{d}.jsonl", PROBLEM_FIELDS, f"probe/{d}", domains={d})
        assert len(rows) == 2
        ids += [r["id"] for r in rows]
    sft = load_rows(built / "sft.jsonl", SFT_FIELDS, "sft", domains=domains)  # the sft stage's reader
    ids += [r["id"] for r in sft]
    assert len(ids) == len(set(ids)) == 38
    by_id = {r["id"]: r for r in sft}
    assert by_id["math/0"]["answer"] == "5" and by_id["math/0"]["domain_origin"] == "source"  # from \boxed{}
    classified = [r for r in sft if r["domain_origin"] == "classifier"]
    assert all(0.3 <= r["domain_confidence"] <= 1 for r in classified)


# --- each step on its own -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "rule"),
    [
        (i, rule)
        for (src, i), (step, rule) in PLANTED.items()
        if src == "numina" and step == "filter" and rule != "where"
    ],
)
def test_each_filter_rule(row, rule):
    from ssp.data_pipeline.sources import _map

    src = Source(name="n", path="x", fields={"solution": "solution", "question_type": "question_type"})
    mapped = _map(src, _raw(NUMINA)[row], row)
    assert first_failed(mapped, build_mod.DEFAULT_FILTERS, Limits(max_problem_chars=600))[0] == rule


def test_filters_keep_the_clean_fixture_rows():
    from ssp.data_pipeline.sources import _map

    src = Source(name="n", path="x", fields={"solution": "solution", "question_type": "question_type"})
    rows = _raw(NUMINA)
    clean = [i for i in range(len(rows)) if PLANTED.get(("numina", i), ("",))[0] != "filter"]
    flagged = {i: first_failed(_map(src, rows[i], i), list(RULES), Limits(600)) for i in clean}
    assert {i: f for i, f in flagged.items() if f} == {}


def test_dedup_exact_near_and_distinct():
    d = Deduplicator(threshold=0.8)
    base = "A ladder 25 feet long leans against a vertical wall. The foot of the ladder is 7 feet from the base of the wall, on level ground, and the top of the ladder rests against the wall. How high up the wall, in feet, does the top of the ladder reach?"
    assert d.check({"uid": "a", "problem": base}) is None
    assert d.check({"uid": "b", "problem": base.upper().replace(" ", "  ")})[:2] == ("exact", "a")
    near = d.check({"uid": "c", "problem": base.replace("reach?", "go?")})
    assert near[:2] == ("near", "a") and 0.8 <= near[2] <= 1  # a MinHash estimate (true 44/46)
    other = base.replace("25", "13").replace("7", "5").replace("reach", "touch")
    assert d.check({"uid": "d", "problem": "Find the greatest common divisor of 252 and 198."}) is None
    assert d.check({"uid": "e", "problem": other}) is None  # other numbers: another training problem
    exact_only = Deduplicator(threshold=0)
    exact_only.check({"uid": "a", "problem": base})
    assert exact_only.check({"uid": "c", "problem": base.replace("reach?", "go?")}) is None


AIME60 = _raw(FIX / "aime24.jsonl")[0]["problem"]
GEOMETRY = _raw(FIX / "math500.jsonl")[2]["problem"]


def _deco(n, similarity):
    d = Decontaminator(n, similarity)
    for i, r in enumerate(_raw(FIX / "math500.jsonl") + _raw(FIX / "aime24.jsonl")):
        d.add("bench", str(i), r["problem"])
    return d


def test_decontamination_catches_each_kind_of_planted_copy():
    d = _deco(10, 0.5)
    verbatim = AIME60
    spaced = "  ".join(GEOMETRY.upper().split())
    numbers = _raw(NUMINA)[36]["problem"]
    reworded = _raw(MATH)[19]["problem"]
    for text in (verbatim, spaced, numbers, reworded, f"Warm-up first. {GEOMETRY} Good luck!"):
        assert d.match(text) is not None, text
    assert d.match(numbers).rule == "numbers" and d.match(numbers).benchmark_id == "4"
    # a rewording keeps the numbers: without the numbers rule the changed numbers go through
    assert _deco(0, 0.5).match(numbers) is None


def test_decontamination_leaves_unrelated_problems():
    d = _deco(10, 0.5)
    planted = {("numina", 35), ("numina", 36), ("math", 18), ("math", 19)}
    for name, path in (("numina", NUMINA), ("math", MATH)):
        for i, row in enumerate(_raw(path)):
            if (name, i) not in planted:
                assert d.match(row["problem"]) is None, (name, i, d.match(row["problem"]))


def _tiny_labelled(seed: int, per_domain: int):
    from ssp.data_pipeline.tiny.problems import TINY_DOMAINS, generate

    rows = [
        (f"{d}-{seed}-{i}", p.problem, d)
        for d in TINY_DOMAINS
        for i, p in enumerate(generate(d, per_domain, seed=seed))
    ]
    return [u for u, _, _ in rows], [t for _, t, _ in rows], [d for *_, d in rows]


def test_label_classifier_accuracy_is_measured_on_held_out_rows():
    uids, texts, labels = _tiny_labelled(1, 100)
    clf, report = held_out_accuracy(texts, labels, uids, threshold=0.5, seed=0)
    assert report["train_rows"] + report["held_out_rows"] == 400 and 40 <= report["held_out_rows"] <= 120
    _, fresh, truth = _tiny_labelled(2, 50)  # rows the classifier never saw, checked here
    forced = clf.model.predict(
        [" ".join(__import__("ssp.data_pipeline.text").data_pipeline.text.masked_words(t)) for t in fresh]
    )
    measured = sum(p == y for p, y in zip(forced, truth, strict=True)) / len(truth)
    assert measured >= 0.9 and abs(report["accuracy"] - measured) <= 0.1
    _, strict = held_out_accuracy(texts, labels, uids, threshold=0.995, seed=0)
    assert strict["coverage_at_threshold"] < report["coverage_at_threshold"]


# --- sources ------------------------------------------------------------------------------


def test_numina_parquet_folder_layout_reads_like_the_jsonl(tmp_path):
    """A local copy in the hub's layout (data/train-00000-of-00001.parquet) through the same code."""
    import datasets

    (tmp_path / "data").mkdir()
    datasets.Dataset.from_list(_raw(NUMINA)).to_parquet(
        str(tmp_path / "data" / "train-00000-of-00001.parquet")
    )
    fields = {"solution": "solution", "label": "problem_type"}
    from_folder = list(read_source(Source(name="n", path=str(tmp_path), fields=fields), "data.sources[0]"))
    from_jsonl = list(read_source(Source(name="n", path=str(NUMINA), fields=fields), "data.sources[0]"))
    assert from_folder == from_jsonl and len(from_folder) == 37
    assert from_folder[8]["source_label"] == "Geometry" and from_folder[8]["uid"] == "n/8"


def test_source_errors_name_source_key_and_line(tmp_path):
    with pytest.raises(
        DataError, match=r"data.sources\[1\]: source 'm': column\(s\) \['answer'\] \(fields.answer\)"
    ):
        list(read_source(Source(name="m", path=str(MATH)), "data.sources[1]"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(NUMINA.read_text().splitlines()[0] + "\n" + '{"problem": "x", \n')
    with pytest.raises(
        DataError, match=r"data.sources\[0\]: source 'b': .*bad.jsonl: line 2: not valid JSON"
    ):
        list(read_source(Source(name="b", path=str(bad)), "data.sources[0]"))
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": 1, "problem": "a", "answer": "1"}\n{"id": 1, "problem": "b", "answer": "2"}\n')
    with pytest.raises(
        DataError, match=r"id '1' \(column 'id'\) appears twice: .*dup.jsonl: line 1 and .*: line 2"
    ):
        list(read_source(Source(name="d", path=str(dup), fields={"id": "id"}), "data.sources[0]"))


def test_a_source_emptied_by_the_filters_is_named(tmp_path):
    proofs = tmp_path / "proofs.jsonl"
    proofs.write_text("".join(json.dumps(r) + "\n" for r in _raw(NUMINA)[25:26] * 2))
    recipe = fixtures_recipe(
        tmp_path, f"data.sources[1].path={proofs}", "data.sources[1].fields.label=problem_type"
    )
    with pytest.raises(
        DataError,
        match=r"data.sources\[1\]: source 'math' .*proofs.jsonl\) has no problem left after the filters \(2 dropped",
    ):
        build_mod.build_pool(_plan(recipe), tmp_path / "data", "fp")


def _plan(recipe):
    """The data stage's own plan for the fixtures recipe (per domain: 1 eval, 2 probe, 1 rl)."""
    from ssp.stages.data import _benchmark_problems, build_plan

    return build_plan(recipe, _benchmark_problems(recipe))


def test_build_resumes_after_a_kill_without_rereading_finished_sources(tmp_path, monkeypatch):
    """The kill is simulated by a KeyboardInterrupt from inside the second source's reader (a
    SIGKILL would leave the same files: the step's temporary file, no state entry)."""
    plan = _plan(fixtures_recipe(tmp_path))
    calls = []
    real = build_mod.read_source

    def reader(src, key):
        calls.append(src.name)
        for i, row in enumerate(real(src, key)):
            if src.name == "math" and i == 5 and len(calls) == 2:
                raise KeyboardInterrupt
            yield row

    monkeypatch.setattr(build_mod, "read_source", reader)
    out = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        build_mod.build_pool(plan, out, "fp")
    first = (out / "build" / "ingest" / "numina.jsonl").stat().st_mtime_ns
    assert not (out / "build" / "ingest" / "math.jsonl").exists()
    result = build_mod.build_pool(plan, out, "fp")
    assert calls == ["numina", "math", "math"]
    assert (out / "build" / "ingest" / "numina.jsonl").stat().st_mtime_ns == first
    assert sum(sum(c.values()) for c in result.card["splits"].values()) == 38
    assert not list(out.rglob(".*.tmp-*"))
    build_mod.build_pool(plan, out, "other")  # another fingerprint: every step again
    assert calls == ["numina", "math", "math", "numina", "math"]


def test_a_build_without_solutions_for_sft_stops_before_it_starts(tmp_path):
    from ssp.launch.preflight import check_recipe

    recipe = fixtures_recipe(
        tmp_path, "stages=[data,sft]", "data.sources=[{name: n, path: " + str(NUMINA) + "}]"
    )
    with pytest.raises(RecipeError, match=r"no source maps a solution column .* data.teacher.model is empty"):
        check_recipe(recipe, recipe.stages)
    assert not recipe.run_dir.exists()


def test_a_failed_data_check_leaves_no_run_folder(tmp_path):
    """data.source=files with a duplicate id: the preflight stops the run before a run folder,
    manifest or W&B run exists."""
    from ssp.launch.runner import run_pipeline

    row = {"id": "1", "domain": "algebra", "problem": "Solve x + 1 = 2.", "answer": "1"}
    files = tmp_path / "files"
    files.mkdir()
    (files / "sft.jsonl").write_text(
        json.dumps({**row, "solutions": ["x = 1"]}) * 1
        + "\n"
        + json.dumps({**row, "solutions": ["1"]})
        + "\n"
    )
    (files / "eval.jsonl").write_text(json.dumps(row) + "\n")
    probes = []
    for d in ("algebra", "number_theory", "counting", "statistics"):
        (files / f"{d}.jsonl").write_text(json.dumps({**row, "domain": d}) + "\n")
        probes.append(f"data.probe_files.{d}={files / f'{d}.jsonl'}")
    recipe = fast_recipe(
        tmp_path / "runs",
        "data.source=files",
        f"data.train_file={files / 'sft.jsonl'}",
        f"data.eval_file={files / 'eval.jsonl'}",
        "tracking.report_to=wandb",
        *probes,
    )
    with pytest.raises(RecipeError, match=r"sft\.jsonl: rows 1 and 2 have the same id '1'"):
        run_pipeline(recipe)
    assert not recipe.run_dir.exists()


@pytest.mark.slow
def test_a_build_with_no_held_out_split_trains_and_says_its_checks_were_skipped(tmp_path):
    """data.eval_problems_per_domain: 0 (the eval stage reads a benchmark instead): the sft stage
    used to stop with KeyError: 'eval'; it trains, and its metrics and report say what it skipped."""
    from ssp.core.manifest import Manifest
    from ssp.launch.runner import execute_here, run_stage

    recipe = fixtures_recipe(
        tmp_path,
        "stages=[data,sft]",
        "data.eval_problems_per_domain=0",
        "model.name_or_path=tiny",
        "sft.max_steps=2",
        "sft.save_every=2",
        "sft.per_device_train_batch_size=4",
        "sft.max_length=512",
    )
    run_stage("data", recipe)
    assert Manifest(recipe.run_dir).outputs("data").eval is None
    execute_here("sft", recipe)
    entry = Manifest(recipe.run_dir).stage("sft")
    assert entry["status"] == "completed" and entry["metrics"]["steps"] == 2
    assert entry["metrics"]["heldout_greedy_accuracy"] == "skipped: no held-out split"


def test_a_held_out_check_without_a_held_out_split_stops_the_data_stage(tmp_path):
    from ssp.launch.runner import run_stage

    recipe = fixtures_recipe(
        tmp_path,
        "stages=[data,sft,probe,merge]",
        "data.eval_problems_per_domain=0",
        "merge.eval_heldout=true",
    )
    with pytest.raises(
        DataError, match=r"eval \(merge.eval_heldout is true and data.eval_problems_per_domain is 0\)"
    ):
        run_stage("data", recipe)
