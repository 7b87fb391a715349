"""``ssp compare`` on hand-made run folders (manifest, recipe, eval results and completions in the
layouts the stages write), every expected number worked out by hand in the comments."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ssp.evaluation.compare import (
    CompareError,
    assign_arms,
    compare,
    compare_runs,
    load_run,
    markdown,
    run_folders,
)
from ssp.launch.cli import main

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
    stages = {s: {"status": "completed", "cost": c, "wall_seconds": c["seconds"]} for s, c in COST.items()}
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
    # rnd-s1's sft stage was shared from another run: no cost here, the donor's wall time kept
    manifest = json.loads((runs[4] / "manifest.json").read_text())
    manifest["stages"]["sft"].update(
        shared_from="elsewhere/sft", cost={**COST["sft"], "hours": 0.0, "usd": 0.0, "seconds": 0.0}
    )
    (runs[4] / "manifest.json").write_text(json.dumps(manifest))
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
    # per run 0.6 GPU-hours, $1.20, 0.6 h wall; 3 runs per arm, less rnd-s1's shared sft (0.5 h, $1)
    cost = res["arms"]["data.teacher.selection=random"]["cost"]
    assert cost["gpu_hours"] == pytest.approx(1.3) and cost["usd"] == pytest.approx(2.6)
    assert cost["wall_hours"] == pytest.approx(1.3) and cost["unshared_wall_hours"] == pytest.approx(1.8)
    assert res["arms"]["data.teacher.selection=maxmin"]["cost"]["wall_hours"] == pytest.approx(1.8)
    # spent 3.1 h of 3.6 h alone: the 0.5 h were paid by a run outside this comparison ("elsewhere"),
    # not saved by it; the shared stages table names the donor
    text = markdown(res)
    assert "spent by these runs 3.100 h" in text and "alone (each stage" in text
    assert "0.000 h was shared among these runs" in text and "0.500 h was inherited from runs outside" in text
    assert f"| {runs[4]} | sft | elsewhere | outside |" in text
    assert res["arms"]["data.teacher.selection=random"]["cost"]["inherited_wall_hours"] == pytest.approx(0.5)
    # the same stage shared from an arm compared here: paid once, here, so it is saved, not inherited
    manifest["stages"]["sft"]["shared_from"] = str(runs[1] / "sft")
    (runs[4] / "manifest.json").write_text(json.dumps(manifest))
    loaded = [load_run(p) for p in runs]
    assign_arms(loaded)
    text = markdown(compare(loaded, "data.teacher.selection=maxmin"))
    assert "0.500 h was shared among these runs" in text and "0.000 h was inherited" in text
    assert f"| {runs[4]} | sft | {runs[1]} | compared here |" in text


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


def test_arms_swept_on_an_entry_of_a_list_are_named_by_its_indexed_key(tmp_path):
    """`ssp sweep --grid rl.phases[0].learning_rate=...` names its arms by that key (a list of
    mappings used to be one opaque key, and --by refused the key the sweep itself had swept)."""
    runs = []
    for lr, seed in ((0.001, 0), (0.001, 1), (0.003, 0), (0.003, 1)):
        run = make_run(tmp_path, f"lr{lr}-s{seed}", "random", seed, 0.1 + lr)
        with (run / "recipe.yaml").open("a") as f:
            f.write(
                f"rl:\n  seed: {seed}\n  phases:\n"
                f"    - {{name: math, learning_rate: {lr}, trl: {{entropy_coef: 0.0}}}}\n"
                "    - {name: code, learning_rate: 0.0001}\n"
            )
        runs.append(run)
    loaded = [load_run(p) for p in runs]
    assert loaded[0].recipe["rl.phases[1].name"] == "code"
    assert loaded[0].recipe["rl.phases[0].trl.entropy_coef"] == 0.0
    assign_arms(loaded)
    assert sorted({r.arm for r in loaded}) == [
        "rl.phases[0].learning_rate=0.001",
        "rl.phases[0].learning_rate=0.003",
    ]
    assign_arms(loaded, ["rl.phases[0].learning_rate"])
    assert [r.values for r in loaded][::2] == [
        {"rl.phases[0].learning_rate": 0.001},
        {"rl.phases[0].learning_rate": 0.003},
    ]


def test_bad_folders_are_named(tmp_path, runs):
    with pytest.raises(CompareError, match="not a run folder"):
        run_folders([tmp_path / "nope"])
    manifest = runs[0] / "manifest.json"
    manifest.write_text(json.dumps({"stages": {"eval": {"status": "failed"}}}))
    with pytest.raises(CompareError, match=f"{runs[0]}: the eval stage is failed"):
        load_run(runs[0])


def as_ran(run: Path) -> Path:
    """Make ``run``'s manifest what ``ssp run`` of its recipe.yaml leaves: every stage of the recipe
    completed with the fingerprint the runner computes (``launch/runner.py: fingerprint``)."""
    from ssp.config.recipe import load_recipe
    from ssp.core.manifest import Manifest
    from ssp.launch.runner import fingerprint
    from ssp.launch.stages import STAGES

    recipe, manifest = load_recipe(run / "recipe.yaml"), Manifest(run)
    for i, name in enumerate(recipe.stages):
        fp = fingerprint(STAGES[name], recipe, manifest).fingerprint
        manifest.update(name, status="completed", fingerprint=fp, output_id=f"{run.name}-{i}")
    return run


@pytest.mark.slow
def test_compare_refuses_a_run_whose_results_are_not_its_recipes(tmp_path, runs, capsys, monkeypatch):
    """A run finished with one recipe, then re-run with another and killed midway (issue 29: reported
    as the new arm with the old eval): ``ssp compare`` recomputes each stage's fingerprint from the
    run's recipe.yaml and refuses, naming the run and the stage."""
    for r in runs:
        as_ran(r)
    assert main(["compare", str(tmp_path), "--out", str(tmp_path / "c1")]) == 0
    capsys.readouterr()
    recipe = runs[0] / "recipe.yaml"  # re-run with 4 epochs: recipe.yaml rewritten, sft running
    recipe.write_text(recipe.read_text().replace("num_train_epochs: 8.0", "num_train_epochs: 4.0"))
    manifest = json.loads((runs[0] / "manifest.json").read_text())
    manifest["stages"]["sft"].update(status="running", output_id=None)
    (runs[0] / "manifest.json").write_text(json.dumps(manifest))
    assert main(["compare", str(tmp_path), "--out", str(tmp_path / "c2")]) == 2
    err = capsys.readouterr().err
    assert f"{runs[0]}: stage sft is running under its current recipe.yaml" in err
    assert not (tmp_path / "c2").exists() and str(runs[1]) not in err
    # completed under the old recipe, recipe.yaml edited since: another fingerprint
    manifest["stages"]["sft"].update(status="completed", output_id="old")
    (runs[0] / "manifest.json").write_text(json.dumps(manifest))
    assert main(["compare", str(tmp_path), "--out", str(tmp_path / "c3")]) == 2
    assert f"{runs[0]}: stage sft was made from another recipe" in capsys.readouterr().err
    # compared anyway on request: listed, with its problem, at the top of compare.md
    assert main(["compare", str(tmp_path), "--out", str(tmp_path / "c4"), "--allow-stale"]) == 0
    md = (tmp_path / "c4" / "compare.md").read_text()
    assert md.startswith("**Runs whose results are not their recipe's**")
    assert f"- {runs[0]}: stage sft was made from another recipe" in md
    assert list(json.loads((tmp_path / "c4" / "compare.json").read_text())["stale"]) == [str(runs[0])]
    # looked at from another folder: the same verdicts (paths are relative to where runs ran)
    monkeypatch.chdir("/")
    assert main(["compare", str(tmp_path), "--out", str(tmp_path / "c5"), "--allow-stale"]) == 0
    assert list(json.loads((tmp_path / "c5" / "compare.json").read_text())["stale"]) == [str(runs[0])]


@pytest.mark.slow
def test_cli_writes_markdown_json_and_plots_for_a_folder_of_runs(tmp_path, runs, capsys):
    for r in runs:
        as_ran(r)
    assert main(["compare", str(tmp_path), "--baseline", "data.teacher.selection=maxmin"]) == 0
    out = tmp_path / "compare"
    md = (out / "compare.md").read_text()
    assert md == capsys.readouterr().out.split("Written:")[0].rstrip("\n") + "\n"
    assert "| data.teacher.selection=maxmin | sft | 30.0 ± 24.8 (n=3) |" in md
    assert "-10.0 ± 12.4 (n=3)" in md and "| 25.0 |" in md  # paired delta; SE(problems) in %
    assert json.loads((out / "compare.json").read_text())["baseline"] == "data.teacher.selection=maxmin"
    assert (out / "compare_heldout.png").stat().st_size > 1000
    assert compare_runs([tmp_path], tmp_path / "again") == md  # the compare folder is not a run


def make_rl_run(root: Path, name: str, lam: float, seed: int, phases: list[list[float]], donor=None) -> Path:
    """A run with eval, sft and a two-phase rl stage in the layouts the stages write: each phase's
    ``log_history.json`` (one row per step with reward and MGPO weights, then TRL's summary row
    without metrics). ``donor``: the rl stage is shared from that run (``shared_from``)."""
    run = make_run(root, name, "maxmin", seed, 0.1 + lam / 10)
    (run / "recipe.yaml").write_text(
        f"run_name: {name}\noutput_root: {root}\nrl:\n  lam: {lam}\n  seed: {seed}\n"
    )
    rl_dir = root / name / "rl"  # with a donor: written, and must not be read
    finals = []
    for i, rewards in enumerate(phases):
        phase = rl_dir / f"{i}-p{i}"
        phase.mkdir(parents=True, exist_ok=True)
        rows = [{"step": s, "reward": r, "mgpo/weight_mean": r / 2} for s, r in enumerate(rewards, 1)]
        # the phase's held-out curve, on its own domains: 0.2 -> 0.3 (phase 0), 0.6 -> 0.7 (phase 1)
        rows.insert(0, {"step": 0, "heldout/pass@1": 0.2 + 0.4 * i})
        rows.append({"step": len(rewards), "heldout/pass@1": 0.3 + 0.4 * i})
        rows.append({"step": len(rewards), "train_runtime": 1.0})
        (phase / "log_history.json").write_text(json.dumps(rows))
        finals.append(str(phase / "final"))
    (run / "sft").mkdir(exist_ok=True)
    (run / "sft" / "log_history.json").write_text(json.dumps([{"step": 10, "loss": 2.0 + seed}]))
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    stages["sft"]["outputs"] = {}
    stages["rl"] = {"status": "completed", "outputs": {"model": finals[-1], "phases": finals}}
    if donor:  # rl and eval shared: this run's eval folder is gone, its results are the donor's
        stages["rl"]["shared_from"] = str(root / donor / "rl")
        stages["eval"]["shared_from"] = str(root / donor / "eval")
        shutil.rmtree(run / "eval")
    (run / "manifest.json").write_text(json.dumps({"stages": stages}))
    return run


@pytest.mark.slow
def test_training_curves_across_arms_phases_end_to_end_and_shared_stages(tmp_path):
    runs = [
        make_rl_run(tmp_path, "lam-0_seed-0", 0.0, 0, [[0.0, 0.2], [0.4]]),
        make_rl_run(tmp_path, "lam-0_seed-1", 0.0, 1, [[0.2, 0.4], [0.6]]),
        make_rl_run(tmp_path, "lam-4_seed-0", 4.0, 0, [[0.1, 0.1], [0.1]]),
    ]
    # a fourth run whose rl is shared from lam-4_seed-0's folder: its curve is read there, not
    # from the 0.9s in its own folder
    runs.append(make_rl_run(tmp_path, "lam-4_seed-1", 4.0, 1, [[0.9, 0.9], [0.9]], donor="lam-4_seed-0"))
    loaded = [load_run(p) for p in runs]
    assign_arms(loaded)
    res = compare(loaded)
    reward = res["curves"]["rl:reward"]
    # lam 0: phase 2's step 1 is step 3 overall; seeds (0, .2, .4) and (.2, .4, .6)
    assert reward["rl.lam=0.0"]["step"] == [1, 2, 3]
    assert reward["rl.lam=0.0"]["mean"] == pytest.approx([0.1, 0.3, 0.5])
    assert reward["rl.lam=0.0"]["min"] == pytest.approx([0.0, 0.2, 0.4])
    # mean over steps per seed: 0.2 and 0.4 -> mean 0.3, sd 0.141421, SE 0.1, t(0.975, 1) 12.7062
    assert reward["rl.lam=0.0"]["over_steps"]["mean"] == pytest.approx(0.3)
    assert reward["rl.lam=0.0"]["over_steps"]["ci95"] == pytest.approx(1.270620, abs=1e-5)
    # lam 4: the shared seed reads the donor's log (0.1), not its own folder's (0.9), and the
    # donor's eval results and completions (problem SE 0.25 as in every fixture run)
    assert reward["rl.lam=4.0"]["mean"] == pytest.approx([0.1, 0.1, 0.1])
    assert res["benchmarks"]["heldout"]["rl.lam=4.0"]["sft"]["pass@1"]["n"] == 2
    assert res["benchmarks"]["heldout"]["rl.lam=4.0"]["sft"]["pass@1_problem_se"] == pytest.approx(0.25)
    assert res["curves"]["rl:mgpo/weight_mean"]["rl.lam=0.0"]["mean"] == pytest.approx([0.05, 0.15, 0.25])
    assert res["curves"]["sft:loss"]["rl.lam=0.0"]["over_steps"]["mean"] == pytest.approx(2.5)
    # the held-out curve per phase: phase 1's start (step 0, laid at step 2) does not overwrite
    # phase 0's end, and the phases' unlike domains are not one line
    math, code = res["curves"]["rl:heldout/pass@1:0-p0"], res["curves"]["rl:heldout/pass@1:1-p1"]
    assert math["rl.lam=0.0"]["step"] == [0, 2] and math["rl.lam=0.0"]["mean"] == pytest.approx([0.2, 0.3])
    assert code["rl.lam=0.0"]["step"] == [2, 3] and code["rl.lam=0.0"]["mean"] == pytest.approx([0.6, 0.7])
    assert "rl:heldout/pass@1" not in res["curves"]
    # shared_from as a sweep records it, relative to where it ran: compared from another directory
    # (the test's cwd is not tmp_path), the donor's folders are found under the runs' ancestors
    for run in runs[3:]:
        m = json.loads((run / "manifest.json").read_text())
        for stage in ("rl", "eval"):
            m["stages"][stage]["shared_from"] = f"{tmp_path.name}/lam-4_seed-0/{stage}"
        (run / "manifest.json").write_text(json.dumps(m))
    reloaded = [load_run(p) for p in runs]
    assign_arms(reloaded)
    again = compare(reloaded)
    assert again["curves"]["rl:reward"]["rl.lam=4.0"]["mean"] == pytest.approx([0.1, 0.1, 0.1])
    assert again["benchmarks"] == res["benchmarks"]
    out = tmp_path / "cmp"
    md = compare_runs(runs, out)
    assert "## Training curves" in md and "| RL reward | rl.lam=0.0 | 0.3 ± 1.3 (n=2) | 0.5 | 3 |" in md
    assert "| held-out pass@1 during RL, phase 1-p1 | rl.lam=0.0 | 0.65 ± 0 (n=2) | 0.7 | 2 |" in md
    assert (out / "compare_curves.png").stat().st_size > 1000
    assert (out / "compare_heldout_vs_rl.lam.png").stat().st_size > 1000  # one numeric key swept
    # a broken log: named in the comparison, that arm without curves, the tables still there
    (tmp_path / "lam-0_seed-1" / "rl" / "1-p1" / "log_history.json").write_text("{not json")
    md = compare_runs(runs, out)
    assert "lam-0_seed-1/rl/1-p1/log_history.json: the trainer log cannot be read" in md
    res = json.loads((out / "compare.json").read_text())
    assert "rl.lam=0.0" not in res["curves"]["rl:reward"] and "rl.lam=4.0" in res["curves"]["rl:reward"]
    assert res["benchmarks"]["heldout"]["rl.lam=0.0"]["sft"]["pass@1"]["n"] == 2


@pytest.mark.slow
def test_the_comparison_is_logged_to_wandb_offline_with_its_tables_and_plots(tmp_path, monkeypatch):
    """Real W&B in offline mode: the comparison run holds the benchmark table (the same numbers as
    compare.json), the training curves as a long table and the PNGs."""
    from ssp.config.recipe import load_recipe
    from ssp.launch.tracking import log_comparison

    from .conftest import TINY

    monkeypatch.setenv("WANDB_MODE", "offline")
    runs = [
        make_rl_run(tmp_path, f"lam-{lam:g}_seed-{s}", lam, s, [[0.1 * s, 0.2], [0.3]])
        for lam in (0.0, 4.0)
        for s in (0, 1)
    ]
    out = tmp_path / "compare"
    compare_runs(runs, out)
    result = json.loads((out / "compare.json").read_text())
    recipe = load_recipe(TINY, ["tracking.report_to=wandb"])
    run_id = log_comparison(recipe, tmp_path, result, sorted(out.glob("*.png")))
    (run_dir,) = (tmp_path / "wandb").glob(f"offline-run-*-{run_id}")
    (table,) = (run_dir / "files" / "media" / "table" / "compare").glob("heldout_*.table.json")
    data = json.loads(table.read_text())
    rows = {(r[0], r[1], r[2]): r for r in data["data"]}
    row = rows[("rl.lam=4.0", "sft", "pass@1")]
    expect = result["benchmarks"]["heldout"]["rl.lam=4.0"]["sft"]
    assert row[3] == pytest.approx(0.5) and row[3] == pytest.approx(expect["pass@1"]["mean"])
    assert row[6] == pytest.approx(expect["delta"]["pass@1"]["mean"])  # 0.5 - 0.1
    (curves,) = (run_dir / "files" / "media" / "table" / "compare").glob("curves_*.table.json")
    n_points = sum(len(c["step"]) for by_arm in result["curves"].values() for c in by_arm.values())
    assert len(json.loads(curves.read_text())["data"]) == n_points
    assert len(list((run_dir / "files" / "media" / "images" / "compare").glob("*.png"))) == 3
    assert log_comparison(load_recipe(TINY, ["tracking.report_to=none"]), tmp_path, result, []) is None


def test_a_metric_undefined_for_a_benchmark_is_left_out_and_a_missing_one_refused(tmp_path):
    """A code benchmark has no cons@k (no answer to vote on: None in its results). The sweep of
    issue 33 crashed on it after every arm had run (statistics.stdev of None). Undefined on every
    seed: the metric is left out; a number for some seeds and None for others: refused, named."""
    runs = [make_run(tmp_path, f"mm-s{s}", "maxmin", s, p) for s, p in ((0, 0.2), (1, 0.4))]
    runs += [make_run(tmp_path, f"rnd-s{s}", "random", s, p) for s, p in ((0, 0.1), (1, 0.3))]
    for run in runs:
        path = run / "eval" / "results.json"
        results = json.loads(path.read_text())
        results["results"]["sft"]["tiny_code"] = {
            "problems": 2,
            "pass@1": 0.5,
            "pass@4": 0.75,
            "cons@4": None,
        }
        path.write_text(json.dumps(results))
    loaded = [load_run(p) for p in runs]
    assign_arms(loaded)
    res = compare(loaded)
    code = res["benchmarks"]["tiny_code"]["data.teacher.selection=random"]["sft"]
    assert set(code) == {"pass@1", "pass@4", "delta"} and "cons@4" not in code["delta"]
    assert code["delta"]["pass@1"]["mean"] == pytest.approx(0.0)
    assert "cons@4" not in markdown(res).split("tiny_code", 1)[1].split("\n\n", 1)[0]
    path = runs[1] / "eval" / "results.json"
    results = json.loads(path.read_text())
    results["results"]["sft"]["tiny_code"]["cons@4"] = 0.5
    path.write_text(json.dumps(results))
    loaded = [load_run(p) for p in runs]
    assign_arms(loaded)
    with pytest.raises(
        CompareError, match=r"tiny_code, model sft, arm .*: cons@4 is undefined in \['.*mm-s0'\]"
    ):
        compare(loaded)
