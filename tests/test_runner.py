"""The stage runner: manifest records, skipping up-to-date stages, --force, upstream checks."""

import json
import subprocess

import pytest

from launch.errors import StageError
from launch.manifest import Manifest
from launch.runner import fingerprint, run_stage
from launch.stages import STAGES

from .conftest import TINY, fast_recipe, ssp_cmd


def _entry(recipe, name):
    return Manifest(recipe.run_dir).stage(name)


def test_data_stage_records_skips_and_reruns(tmp_path):
    recipe = fast_recipe(tmp_path)
    run_stage("data", recipe)
    first = _entry(recipe, "data")
    assert first["status"] == "completed" and first["wall_seconds"] >= 0
    assert {"config_hash", "fingerprint", "inputs", "outputs", "started_at", "ended_at"} <= set(first)
    assert (recipe.run_dir / "data" / "sft.jsonl").is_file()

    run_stage("data", recipe)  # same config: skipped
    assert _entry(recipe, "data")["output_id"] == first["output_id"]

    changed = fast_recipe(tmp_path, "data.seed=99")  # other config: re-run, old folder kept aside
    run_stage("data", changed)
    second = _entry(changed, "data")
    assert second["output_id"] != first["output_id"] and second["config_hash"] != first["config_hash"]
    assert len(list(tmp_path.glob("tiny/data.replaced-*"))) == 1

    run_stage("data", changed, force=True)  # forced: re-run even though up to date
    assert _entry(changed, "data")["output_id"] != second["output_id"]


def test_same_seed_gives_identical_files(tmp_path):
    a, b = fast_recipe(tmp_path / "a"), fast_recipe(tmp_path / "b")
    run_stage("data", a)
    run_stage("data", b)
    for name in ("sft.jsonl", "eval.jsonl", "rl.jsonl", "probe/algebra.jsonl"):
        assert (a.run_dir / "data" / name).read_bytes() == (b.run_dir / "data" / name).read_bytes()


def test_downstream_fingerprint_follows_upstream_outputs(tmp_path):
    recipe = fast_recipe(tmp_path)
    run_stage("data", recipe)
    before = fingerprint(STAGES["sft"], recipe, Manifest(recipe.run_dir))[1]
    run_stage("data", recipe, force=True)  # same config, new outputs: sft must not be skipped
    after = fingerprint(STAGES["sft"], recipe, Manifest(recipe.run_dir))[1]
    assert before != after


def test_stage_without_its_upstream_fails_clearly(tmp_path):
    with pytest.raises(StageError, match="stage 'sft' needs stage 'data', which has not completed"):
        run_stage("sft", fast_recipe(tmp_path))


def test_files_source_reports_the_missing_file(tmp_path):
    recipe = fast_recipe(
        tmp_path,
        "data.source=files",
        f"data.train_file={tmp_path}/missing.jsonl",
        f"data.eval_file={tmp_path}/eval.jsonl",
        "data.domains=[algebra]",
        f"data.probe_files={{algebra: {tmp_path}/probe.jsonl}}",
    )
    (tmp_path / "eval.jsonl").write_text('{"id": "1", "domain": "algebra", "problem": "p", "answer": "1"}\n')
    with pytest.raises(Exception, match=r"sft split: file not found: .*missing\.jsonl"):
        run_stage("data", recipe)
    assert _entry(recipe, "data")["status"] == "failed"


def test_cli_reports_recipe_errors_without_traceback(tmp_path):
    out = subprocess.run(
        ssp_cmd("run", str(TINY), f"output_root={tmp_path}", "sft.lerning_rate=1"),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "ssp: error:" in out.stderr and "sft.lerning_rate" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_pipeline_skip_and_force_through_the_cli(tmp_path):
    """`ssp run` twice skips everything; `--force sft` redoes sft only; `--force data` redoes both."""
    from .conftest import FAST

    args = ["run", str(TINY), f"output_root={tmp_path}", *FAST]

    def run(*extra):
        out = subprocess.run(ssp_cmd(*args, *extra), capture_output=True, text=True)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        stages = json.loads((tmp_path / "tiny" / "manifest.json").read_text())["stages"]
        return {k: v["output_id"] for k, v in stages.items()}, out

    ids1, out = run()
    assert "Report:" in out.stdout and "| SFT final" in out.stdout
    assert (tmp_path / "tiny" / "report.md").is_file()
    ids2, out = run()
    assert ids2 == ids1 and "up to date" in out.stderr
    ids3, _ = run("--force", "sft")
    assert ids3["data"] == ids1["data"] and ids3["sft"] != ids1["sft"]
    ids4, _ = run("--force", "data")
    assert ids4["data"] != ids3["data"] and ids4["sft"] != ids3["sft"]
