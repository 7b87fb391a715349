"""The stage runner: manifest records, skipping up-to-date stages, --force, upstream checks."""

import json
import subprocess
from pathlib import Path

import pytest

from ssp.core.errors import RecipeError, StageError
from ssp.core.manifest import Manifest
from ssp.launch.runner import execute_here, fingerprint, run_stage
from ssp.launch.stages import STAGES

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
    assert len(list(tmp_path.glob("tiny/data.replaced-*"))) == 1, "keep_replaced=1 keeps the newest only"
    assert not (recipe.run_dir / ".data.lock").exists(), "the stage lock file outlived the stage"


def test_keep_replaced_zero_deletes_at_once(tmp_path):
    run_stage("data", fast_recipe(tmp_path, "keep_replaced=0"))
    run_stage("data", fast_recipe(tmp_path, "keep_replaced=0"), force=True)
    assert not list(tmp_path.glob("tiny/data.replaced-*"))


def test_same_seed_gives_identical_files(tmp_path):
    a, b = fast_recipe(tmp_path / "a"), fast_recipe(tmp_path / "b")
    run_stage("data", a)
    run_stage("data", b)
    for name in ("sft.jsonl", "eval.jsonl", "rl.jsonl", "probe/algebra.jsonl"):
        assert (a.run_dir / "data" / name).read_bytes() == (b.run_dir / "data" / name).read_bytes()


def test_downstream_fingerprint_follows_upstream_outputs(tmp_path):
    recipe = fast_recipe(tmp_path)
    run_stage("data", recipe)
    before = fingerprint(STAGES["sft"], recipe, Manifest(recipe.run_dir)).fingerprint
    run_stage("data", recipe, force=True)  # same config, new outputs: sft must not be skipped
    after = fingerprint(STAGES["sft"], recipe, Manifest(recipe.run_dir)).fingerprint
    assert before != after


def test_stage_without_its_upstream_fails_clearly(tmp_path):
    with pytest.raises(RecipeError, match="stage 'sft' needs stage 'data', which is neither run before"):
        run_stage("sft", fast_recipe(tmp_path))
    with pytest.raises(StageError, match="stage 'sft' needs stage 'data', which has not completed"):
        execute_here("sft", fast_recipe(tmp_path))  # a torchrun worker, past the launcher's check


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
    (tmp_path / "probe.jsonl").write_text('{"id": "2", "domain": "algebra", "problem": "q", "answer": "2"}\n')
    with pytest.raises(RecipeError, match=r"data.train_file: file not found: .*missing\.jsonl"):
        run_stage("data", recipe)  # the launcher's check, before the stage starts
    assert _entry(recipe, "data") is None
    with pytest.raises(Exception, match=r"data.train_file: file not found: .*missing\.jsonl"):
        execute_here("data", recipe)  # the stage's own check
    assert _entry(recipe, "data")["status"] == "failed"


@pytest.mark.slow
def test_cli_reports_recipe_errors_without_traceback(tmp_path):
    out = subprocess.run(
        ssp_cmd("run", str(TINY), f"output_root={tmp_path}", "sft.lerning_rate=1"),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "ssp: error:" in out.stderr and "sft.lerning_rate" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, message",
    [
        ("sft.learning_rate=[1,2", "override 'sft.learning_rate=[1,2': the value is not valid YAML"),
        ("eval.models=[base, {x: ]", "the value is not valid YAML: did not find expected node content"),
    ],
)
def test_malformed_yaml_is_one_line_naming_the_override(tmp_path, override, message):
    out = subprocess.run(ssp_cmd("show", str(TINY), override), capture_output=True, text=True)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("sft:\n  learning_rate: [1,\n")
    out = subprocess.run(ssp_cmd("show", str(bad)), capture_output=True, text=True)
    assert out.returncode == 2 and f"{bad}: not valid YAML" in out.stderr and "line 3" in out.stderr


@pytest.mark.slow
def test_a_recipes_references_are_checked_before_any_stage_runs(tmp_path):
    """A misspelt eval model and an RL phase reading an RL split that `data.rl_file: null` never
    makes: one error listing both, before the data stage starts; an earlier eval folder stays."""
    (tmp_path / "tiny" / "eval").mkdir(parents=True)
    for name in ("train", "eval", "probe"):
        (tmp_path / f"{name}.jsonl").write_text(
            '{"id": "1", "domain": "algebra", "problem": "p", "answer": "1"}\n'
        )
    out = subprocess.run(
        ssp_cmd(
            "run",
            str(TINY),
            f"output_root={tmp_path}",
            "eval.models=[base,signa]",
            "data.source=files",
            f"data.train_file={tmp_path}/train.jsonl",
            f"data.eval_file={tmp_path}/eval.jsonl",
            "data.domains=[algebra]",
            f"data.probe_files={{algebra: {tmp_path}/probe.jsonl}}",
        ),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "rl.phases[0].prompts: 'rl' reads the data stage's RL prompt set, but there is none" in out.stderr
    assert "eval.models[1]: 'signa' is neither a model alias (base, sft, spectrum, signal)" in out.stderr
    assert not (tmp_path / "tiny" / "manifest.json").exists(), "a stage ran"
    assert [p.name for p in (tmp_path / "tiny").iterdir()] == ["eval"], "the eval folder was moved aside"


def test_nproc_auto_and_more_processes_than_gpus(monkeypatch):
    """`auto` is every visible GPU (1 without one); more processes than GPUs is one line naming the
    key, before launch. The GPU count is a stand-in here (this machine has none)."""
    import torch

    from ssp.train.device import resolve_nproc

    assert resolve_nproc("auto", "sft.nproc_per_node") == max(1, torch.cuda.device_count())
    assert resolve_nproc(2, "sft.nproc_per_node") == 2  # CPU: gloo processes, any count
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert resolve_nproc("auto", "rl.nproc_per_node") == 1
    with pytest.raises(
        RecipeError,
        match=r"sft.nproc_per_node=2, but this machine has 1 visible GPU\(s\) \(CUDA_VISIBLE_DEVICES=0\): set sft.nproc_per_node to at most 1, or to auto",
    ):
        resolve_nproc(2, "sft.nproc_per_node")
    recipe = fast_recipe(Path("/nonexistent"), "sft.nproc_per_node=2")
    with pytest.raises(RecipeError, match="sft.nproc_per_node=2, but this machine has 1 visible GPU"):
        run_stage("sft", recipe)


def test_a_torchrun_worker_beyond_the_visible_gpus_stops_with_one_line(monkeypatch, capsys):
    """torchrun started by hand with too many processes: one line naming the cause, not CUDA's
    "invalid device ordinal" traceback. The GPU is a stand-in (this machine has none)."""
    import torch

    from ssp.launch.worker import main as worker

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr("ssp.launch.worker.die_with_parent", lambda *a: None)  # not a real torchrun worker
    with pytest.raises(SystemExit) as exit_info:
        worker(["sft", str(TINY)])
    assert exit_info.value.code == 2
    assert "torchrun started process 1 on a node with 1 visible GPU(s)" in capsys.readouterr().err


@pytest.mark.slow
def test_pipeline_skip_and_force_through_the_cli(tmp_path):
    """`ssp run` twice skips everything; `--force data` redoes both stages. Two stages are enough to
    see skip and force through the CLI (the whole pipeline ran four times here, ~2.5 of the suite's
    minutes; test_sft.py's two-worker test runs every stage through `ssp run`). Which stages a
    `--force` picks is test_force_redoes_that_stage_and_every_later_one's, in this process."""
    from .conftest import FAST

    quick = ["sft.max_steps=2", "sft.save_every=2", "sft.eval_base=false", "sft.eval_limit=4"]
    args = ["run", str(TINY), f"output_root={tmp_path}", *FAST, *quick, "stages=[data,sft]"]

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
    ids3, _ = run("--force", "data")
    assert ids3["data"] != ids1["data"] and ids3["sft"] != ids1["sft"]


def test_force_redoes_that_stage_and_every_later_one(tmp_path, monkeypatch):
    """`--force sft` on the whole recipe: data is left to the skip check, sft and every later stage
    are forced. The stages themselves are replaced by a recorder (a test double: what is checked is
    the runner's choice; the CLI test above runs stages for real)."""
    import ssp.launch.report as report
    import ssp.launch.runner as runner

    calls = []
    monkeypatch.setattr(runner, "run_stage", lambda name, recipe, force, checked: calls.append((name, force)))
    monkeypatch.setattr(runner, "adopt", lambda *a: False)
    monkeypatch.setattr(report, "write_report", lambda recipe: recipe.run_dir / "report.md")
    recipe = fast_recipe(tmp_path)
    runner.run_pipeline(recipe, force="sft")
    assert calls == [(name, name != "data") for name in recipe.stages]
    assert [n for n, _ in calls] == ["data", "sft", "probe", "merge", "rl", "eval"]
    calls.clear()
    runner.run_pipeline(recipe)
    assert calls == [(name, False) for name in recipe.stages]
    with pytest.raises(StageError, match="--force 'sf': not a stage of this recipe"):
        runner.run_pipeline(recipe, force="sf")


def test_a_code_reward_that_would_refuse_is_reported_before_any_stage(tmp_path, monkeypatch):
    """On a machine without bubblewrap (a stand-in: the sandbox's probe answers "none"), a strict
    code_tests in the recipe would refuse only when its stage starts: the preflight says so first,
    and `sandbox: unsafe` (the explicit opt-in) clears it."""
    import ssp.reward.sandbox as sandbox
    from ssp.launch.preflight import check_recipe

    monkeypatch.setattr(sandbox, "_bwrap", lambda: None)
    sandbox.isolation.cache_clear()
    try:
        lcb = "eval.benchmarks=[{name: lcb_v6, source: /nonexistent/lcb.jsonl}]"
        recipe = fast_recipe(tmp_path, "stages=[eval]", "eval.models=[Qwen/Qwen2.5-Math-1.5B]", lcb)
        with pytest.raises(
            RecipeError,
            match=r"eval.benchmarks\[0\] \(lcb_v6\): code_tests runs programs only under bubblewrap",
        ):
            check_recipe(recipe, ["eval"])
        unsafe = lcb.replace("}]", ", reward_options: {sandbox: unsafe}}]")
        recipe = fast_recipe(tmp_path, "stages=[eval]", "eval.models=[Qwen/Qwen2.5-Math-1.5B]", unsafe)
        with pytest.raises(RecipeError) as info:
            check_recipe(recipe, ["eval"])
        assert "bubblewrap" not in str(info.value)  # what is left: the made-up source file
        assert "eval.benchmarks[0].source: file not found: /nonexistent/lcb.jsonl" in str(info.value)
    finally:
        sandbox.isolation.cache_clear()
