"""Nothing stale is served between runs (issue 29): a shared stage whose donor is re-running it, a
second ``ssp run`` into a running run's folder, manifest writers racing, leftovers of killed runs.

Each test uses real processes where the finding did (two writers, ``kill -9``, a held lock)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ssp.core.errors import StageError
from ssp.core.manifest import Manifest
from ssp.launch.runner import run_pipeline, run_stage
from tests.conftest import fast_recipe, ssp_cmd

ROOT = Path(__file__).resolve().parents[1]


def _writer(run_dir: Path, prefix: str, count: int) -> subprocess.Popen:
    code = textwrap.dedent(
        f"""
        from ssp.core.manifest import Manifest
        m = Manifest({str(run_dir)!r})
        for i in range({count}):
            m.update("{prefix}%d" % i, status="completed")
        """
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)


def test_manifest_updates_from_two_processes_are_never_lost(tmp_path):
    """``ssp stage eval`` beside ``ssp run``: two processes updating one manifest. Unlocked, a
    read-modify-write lost entries (2 of 5 stress runs lost a "completed")."""
    writers = [_writer(tmp_path, p, 150) for p in ("a", "b")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    stages = Manifest(tmp_path).stage
    missing = [f"{p}{i}" for p in "ab" for i in range(150) if stages(f"{p}{i}") is None]
    assert missing == []
    assert not (tmp_path / ".manifest.lock").exists()  # no lock file left behind


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.slow
def test_a_branch_never_keeps_a_stage_its_donor_is_re_running(tmp_path):
    """The donor's stage re-run with other settings and killed (-9) midway: its manifest entry says
    running. The branch that shared the stage must not call it current (it used to: the entry kept
    the old output id); it runs the stage itself. Then the donor completes again with other output:
    still not the branch's."""
    donor = fast_recipe(tmp_path / "donor", "stages=[data]", "run_name=base")
    branch = fast_recipe(tmp_path / "branch", "stages=[data]", "run_name=arm")
    run_pipeline(donor)
    run_pipeline(branch, donors=[donor.run_dir])
    shared = Manifest(branch.run_dir).stage("data")
    assert shared["shared_from"] == str(donor.run_dir / "data") and not (branch.run_dir / "data").exists()

    # the donor re-runs its data stage with another seed (and so another fingerprint); killed midway
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [f"output_root={tmp_path / 'donor'}", "stages=[data]", "run_name=base", "data.seed=7"]
    from tests.conftest import FAST, TINY

    proc = subprocess.Popen(ssp_cmd("stage", "data", str(TINY), *FAST, *args), cwd=ROOT, env=env)
    try:
        _wait_for(
            lambda: (
                (Manifest(donor.run_dir).stage("data") or {}).get("status") == "running"
                or proc.poll() is not None
            ),
            60,
            "the donor's re-run to start",
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert Manifest(donor.run_dir).stage("data")["status"] == "running"

    run_pipeline(branch, donors=[donor.run_dir])  # the stage runs here now
    entry = Manifest(branch.run_dir).stage("data")
    assert entry["status"] == "completed" and not entry.get("shared_from")
    assert (branch.run_dir / "data").is_dir()


@pytest.mark.slow
def test_a_stage_reading_a_donor_that_changed_meanwhile_is_not_kept(tmp_path, monkeypatch):
    """A stage that read a shared upstream stage whose donor re-ran it while the stage was running
    fails naming the donor: its result was built from weights the manifest does not record."""
    from ssp.launch import runner

    donor = fast_recipe(tmp_path / "donor", "stages=[data]", "run_name=base")
    run_pipeline(donor)
    branch = fast_recipe(tmp_path / "branch", "stages=[data,sft]", "run_name=arm")
    runner.adopt("data", branch, [donor.run_dir])
    spec = runner.STAGES["sft"]

    class Rerun:  # the donor starts re-running its data stage while the branch's sft "trains"
        @staticmethod
        def run(recipe, ctx):
            Manifest(donor.run_dir).update("data", status="running", output_id=None)
            return runner.StageResult(outputs={"model": "x"}, metrics={})

    monkeypatch.setitem(runner.STAGES, "sft", dataclasses.replace(spec, run=Rerun.run))
    with pytest.raises(StageError, match=r"data \(shared from .*donor.*changed in its donor"):
        runner.execute_here("sft", branch)
    assert Manifest(branch.run_dir).stage("sft")["status"] == "failed"


@contextlib.contextmanager
def held_elsewhere(lock: str):
    """A lock of ``launch.runner`` (``run_lock(...)``, ``stage_lock(...)``) held by another process
    for the block."""
    code = (
        "import time; from pathlib import Path; from ssp.launch.runner import run_lock, stage_lock\n"
        f"with {lock}:\n  print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_a_second_run_into_a_running_runs_folder_changes_nothing(tmp_path):
    """A second ``ssp run`` into a folder another ``ssp run`` holds is refused before it writes: it
    used to rewrite recipe.yaml first, which the first run's torchrun workers then read."""
    first = fast_recipe(tmp_path, "stages=[data]")
    (first.run_dir).mkdir(parents=True)
    (first.run_dir / "recipe.yaml").write_text("the first run's recipe\n")
    with held_elsewhere(f"run_lock(Path({str(first.run_dir)!r}))"):
        second = fast_recipe(tmp_path, "stages=[data]", "sft.learning_rate=0.5")
        with pytest.raises(StageError, match=r"is being run by another `ssp run` .* held by pid \d+"):
            run_pipeline(second)
    assert (first.run_dir / "recipe.yaml").read_text() == "the first run's recipe\n"
    assert not (first.run_dir / "manifest.json").exists()


def test_torchrun_workers_read_their_launchers_recipe_not_the_run_folders(tmp_path, monkeypatch):
    """Each launch hands its workers a recipe file of its own (removed after); a recipe.yaml rewritten
    meanwhile is never what a worker reads."""
    from ssp.launch import runner

    recipe = fast_recipe(tmp_path, "sft.learning_rate=0.001")
    seen = {}

    def fake_call(cmd, env=None):  # stands in for torchrun: reads what the worker would be given
        path = Path(cmd[-1])
        seen["path"], seen["text"] = path, path.read_text()
        return 1

    monkeypatch.setattr(runner, "_require_upstream", lambda *a: None)
    monkeypatch.setattr(runner, "fingerprint", lambda *a: runner.StageIdentity("c", "f", {}))
    monkeypatch.setattr(runner.subprocess, "call", fake_call)
    (recipe.run_dir).mkdir(parents=True)
    (recipe.run_dir / "recipe.yaml").write_text("rewritten by someone else\n")
    with pytest.raises(StageError, match="torchrun exited with code 1"):
        run_stage("sft", recipe, checked=True)
    assert seen["path"].parent == recipe.run_dir / ".attempts" and "learning_rate: 0.001" in seen["text"]
    assert not seen["path"].exists()  # removed once torchrun exited


def test_leftovers_of_killed_runs_are_removed(tmp_path):
    """Attempt recipes and temporary recipe files of dead processes go; a live process's stay."""
    import socket

    from ssp.launch.runner import remove_leftovers

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    (tmp_path / ".attempts").mkdir()
    gone = [
        tmp_path / ".attempts" / f"sft.{host}.{dead.pid}.yaml",
        tmp_path / f".recipe.yaml.tmp-{host}-{dead.pid}",
    ]
    kept = [
        tmp_path / ".attempts" / f"sft.{host}.{os.getpid()}.yaml",
        tmp_path / ".attempts" / "rl.other.1.yaml",
    ]
    for p in gone + kept:
        p.write_text("x")
    assert sorted(remove_leftovers(tmp_path)) == sorted(gone)
    assert all(p.exists() for p in kept)


def test_adopting_moves_aside_a_killed_own_attempt(tmp_path):
    """An arm killed in its own sft, which then shares sft from another run, keeps no partial sft/
    beside a manifest saying the stage is shared."""
    from ssp.launch import runner

    donor = fast_recipe(tmp_path / "donor", "stages=[data]", "run_name=base")
    run_pipeline(donor)
    branch = fast_recipe(tmp_path / "branch", "stages=[data]", "run_name=arm")
    partial = branch.run_dir / "data" / "checkpoint-4"
    partial.mkdir(parents=True)
    assert runner.adopt("data", branch, [donor.run_dir]) == donor.run_dir / "data"
    assert not (branch.run_dir / "data").exists()
    assert [p.name.split("-")[0] for p in branch.run_dir.glob("data.replaced-*")] == ["data.replaced"]
    assert json.loads((branch.run_dir / "manifest.json").read_text())["stages"]["data"]["shared_from"]


@pytest.mark.slow
def test_a_shared_stage_is_in_the_sharing_runs_wandb_group_with_its_curves(tmp_path, monkeypatch):
    """Real W&B, offline: an arm that shares sft from another run gets a W&B run ``<arm>/sft`` in its
    own group (tag shared), holding the donor's loss curve and metrics (issue 29: the arm's curves
    were only in the donor's group)."""
    from ssp.config.recipe import load_recipe
    from ssp.launch.tracking import log_shared_stage
    from tests.conftest import TINY
    from tests.helpers.wandb_records import history, run_info

    monkeypatch.setenv("WANDB_MODE", "offline")
    donor = tmp_path / "base" / "sft"
    donor.mkdir(parents=True)
    (donor / "log_history.json").write_text(json.dumps([{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.0}]))
    recipe = load_recipe(TINY, [f"output_root={tmp_path}", "run_name=arm", "tracking.report_to=wandb"])
    run_id = log_shared_stage(recipe, "sft", donor, {"metrics": {"final_loss": 2.0}})
    (run_file,) = (recipe.run_dir / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
    info = run_info(run_file)
    assert info["group"] == "arm" and info["name"] == "arm/sft"
    assert info["config"]["shared_from"] == str(donor)
    assert [r["train/loss"] for r in history(run_file) if "train/loss" in r] == [2.5, 2.0]


def test_a_stage_is_not_adopted_through_a_donor_whose_own_donor_re_ran_it(tmp_path):
    """C would share data from B, which shares it from A; A is re-running it: C runs it itself."""
    from ssp.launch import runner

    a = fast_recipe(tmp_path / "a", "stages=[data]", "run_name=a")
    run_pipeline(a)
    b = fast_recipe(tmp_path / "b", "stages=[data]", "run_name=b")
    assert runner.adopt("data", b, [a.run_dir]) == a.run_dir / "data"
    Manifest(a.run_dir).update("data", status="running", output_id=None)  # as _run_locked records it
    c = fast_recipe(tmp_path / "c", "stages=[data]", "run_name=c")
    assert runner.adopt("data", c, [b.run_dir]) is None
    assert Manifest(c.run_dir).stage("data") is None


@pytest.mark.slow
def test_a_stage_running_here_under_ssp_stage_is_not_replaced_by_adoption(tmp_path):
    """``ssp stage data`` holds this run's data lock (another process): ``ssp run`` beside it must not
    move its folder aside nor overwrite its manifest entry by sharing the stage from a donor."""
    from ssp.launch import runner

    donor = fast_recipe(tmp_path / "donor", "stages=[data]", "run_name=base")
    run_pipeline(donor)
    here = fast_recipe(tmp_path / "here", "stages=[data]", "run_name=arm")
    (here.run_dir / "data").mkdir(parents=True)
    with held_elsewhere(f"stage_lock(Path({str(here.run_dir)!r}), 'data')"):
        assert runner.adopt("data", here, [donor.run_dir]) is None
    assert (here.run_dir / "data").is_dir() and Manifest(here.run_dir).stage("data") is None
