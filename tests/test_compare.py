"""``ssp compare`` on hand-made run folders (manifest, recipe, eval results and completions in the
layouts the stages write), every expected number worked out by hand in the comments."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evaluation.compare import CompareError, assign_arms, compare, compare_runs, load_run, run_folders
from launch.cli import main

COST = {
    "sft": {"unit": "gpu_hours", "hours": 0.5, "usd": 1.0, "seconds": 1800},
    "eval": {"unit": "gpu_hours", "hours": 0.1, "usd": 0.2, "seconds": 360},
}


def make_run(root: Path, name: str, selection: str, seed: int, pass1: float, epochs: float = 8.0) -> Path:
    run = root / name
    (run / "eval" / "completions").mkdir(parents=True)
    (run / "recipe.yaml").write_text(
        f"run_name: {name}\noutput_root: {root}\n"
        f"data:\n  seed: {seed}\n  teacher:\n    selection: {selection}\n    seed: {seed}\n"
        f"sft:\n  seed: {seed}\n  num_train_epochs: {epochs}\n"
    )
    stages = {s: {"status": "completed", "cost": c} for s, c in COST.items()}
    (run / "manifest.json").write_text(json.dumps({"stages": stages}))
    results = {
        "sft": {
            "heldout": {
                "problems": 2,
                "pass@1": pass1,
                "pass@8": min(1.0, 2 * pass1),
                "pass@1_per_domain": {},
            }
        }
    }
    (run / "eval" / "results.json").write_text(json.dumps({"results": results}))
    # problem a: 2 of 4 right (0.5), problem b: 0 of 4 -> per-problem sd 0.35355, SE 0.35355/sqrt(2) = 0.25
    pq.write_table(
        pa.table({"problem_id": ["a"] * 4 + ["b"] * 4, "score": [1.0, 1.0, 0.0, None] + [0.0] * 4}),
        run / "eval" / "completions" / "sft__heldout.parquet",
    )
    return run


@pytest.fixture
def runs(tmp_path):
    a = [
        make_run(tmp_path, f"mm-s{s}", "maxmin", s, p)
        for s, p in zip((0, 1, 2), (0.2, 0.3, 0.4), strict=True)
    ]
    b = [
        make_run(tmp_path, f"rnd-s{s}", "random", s, p)
        for s, p in zip((0, 1, 2), (0.1, 0.25, 0.25), strict=True)
    ]
    return a + b


def test_means_intervals_paired_deltas_problem_se_and_cost(runs):
    loaded = [load_run(p) for p in runs]
    assign_arms(loaded)
    assert {r.arm for r in loaded} == {"data.teacher.selection=maxmin", "data.teacher.selection=random"}
    res = compare(loaded, "data.teacher.selection=maxmin")
    mm = res["benchmarks"]["heldout"]["data.teacher.selection=maxmin"]["sft"]
    rnd = res["benchmarks"]["heldout"]["data.teacher.selection=random"]["sft"]
    # maxmin pass@1 0.2, 0.3, 0.4: mean 0.3, sd 0.1, SE 0.057735, t(0.975, 2) = 4.302653 -> 0.248414
    assert mm["pass@1"]["mean"] == pytest.approx(0.3) and mm["pass@1"]["ci95"] == pytest.approx(
        0.248414, abs=1e-6
    )
    # random - maxmin by seed: -0.1, -0.05, -0.15: mean -0.1, sd 0.05, SE 0.028868 -> 0.124207
    d = rnd["delta"]["pass@1"]
    assert d["paired"] and d["mean"] == pytest.approx(-0.1) and d["ci95"] == pytest.approx(0.124207, abs=1e-6)
    assert "delta" not in mm
    assert mm["pass@1_problem_se"] == pytest.approx(0.25)  # unscored (None) counts as wrong
    # per run 0.6 GPU-hours, $1.20, 0.6 h wall; 3 runs per arm
    cost = res["arms"]["data.teacher.selection=random"]["cost"]
    assert cost["gpu_hours"] == pytest.approx(1.8) and cost["usd"] == pytest.approx(3.6)
    assert cost["wall_hours"] == pytest.approx(1.8)


def test_unpaired_delta_when_the_arms_ran_other_seeds(tmp_path):
    runs = [make_run(tmp_path, f"mm-s{s}", "maxmin", s, p) for s, p in ((0, 0.2), (1, 0.4))]
    runs += [make_run(tmp_path, f"rnd-s{s}", "random", s, p) for s, p in ((5, 0.1), (6, 0.3))]
    loaded = [load_run(p) for p in runs]
    assign_arms(loaded)
    d = compare(loaded)["benchmarks"]["heldout"]["data.teacher.selection=random"]["sft"]["delta"]["pass@1"]
    # each arm: sd 0.141421, SE 0.1, t(0.975, 1) = 12.7062 -> 1.27062; combined: 1.27062 * sqrt(2)
    assert (
        not d["paired"]
        and d["mean"] == pytest.approx(-0.1)
        and d["ci95"] == pytest.approx(1.796929, abs=1e-5)
    )


def test_a_key_that_varies_per_seed_needs_by(tmp_path):
    runs = [make_run(tmp_path, f"one-s{s}", "random", s, 0.1, epochs=8 + s) for s in range(2)]
    runs += [make_run(tmp_path, f"mm-s{s}", "maxmin", s, 0.2) for s in range(2)]
    loaded = [load_run(p) for p in runs]
    assign_arms(loaded)  # epochs differ per seed: each run of 'one' is an arm of its own
    assert len({r.arm for r in loaded}) == 3
    assign_arms(loaded, ["data.teacher.selection"])
    assert sorted({r.arm for r in loaded}) == [
        "data.teacher.selection=maxmin",
        "data.teacher.selection=random",
    ]
    with pytest.raises(CompareError, match=r"--by: no run's recipe has the keys \['data.teacher.selecton'\]"):
        assign_arms(loaded, ["data.teacher.selecton"])
    with pytest.raises(CompareError, match="same arm .* same seeds: name the keys"):
        assign_arms(loaded, ["sft.seed"])


def test_bad_folders_are_named(tmp_path, runs):
    with pytest.raises(CompareError, match="not a run folder"):
        run_folders([tmp_path / "nope"])
    manifest = runs[0] / "manifest.json"
    manifest.write_text(json.dumps({"stages": {"eval": {"status": "failed"}}}))
    with pytest.raises(CompareError, match=f"{runs[0]}: the eval stage is failed"):
        load_run(runs[0])


def test_cli_writes_markdown_json_and_plots_for_a_folder_of_runs(tmp_path, runs, capsys):
    assert main(["compare", str(tmp_path), "--baseline", "data.teacher.selection=maxmin"]) == 0
    out = tmp_path / "compare"
    md = (out / "compare.md").read_text()
    assert md == capsys.readouterr().out.split("Written:")[0].rstrip("\n") + "\n"
    assert "| data.teacher.selection=maxmin | sft | 30.0 ± 24.8 (n=3) |" in md
    assert "-10.0 ± 12.4 (n=3)" in md and "| 25.0 |" in md  # paired delta; SE(problems) in %
    assert json.loads((out / "compare.json").read_text())["baseline"] == "data.teacher.selection=maxmin"
    assert (out / "compare_heldout.png").stat().st_size > 1000
    assert compare_runs([tmp_path], tmp_path / "again") == md  # the compare folder is not a run
