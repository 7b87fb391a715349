"""The SFT stage: real TRL training on the tiny model, masking, bad input, atomic checkpoints, resume."""

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from ssp.core.errors import DataError
from ssp.core.manifest import Manifest
from ssp.launch.runner import execute_here, run_stage
from ssp.train.checkpoints import STAGING, clear_staging, complete_checkpoints, latest_checkpoint

from .conftest import FAST, TINY, fast_recipe, ssp_cmd
from .helpers.scripted_model import build_scripted_model


@pytest.mark.slow
def test_tiny_sft_loss_falls_and_every_checkpoint_is_complete(tmp_path):
    recipe = fast_recipe(tmp_path, "sft.max_steps=30", "sft.save_every=8")
    run_stage("data", recipe)
    execute_here("sft", recipe)
    entry = Manifest(recipe.run_dir).stage("sft")
    m = entry["metrics"]
    assert entry["status"] == "completed" and m["steps"] == 30
    assert m["loss_last"] < 0.7 * m["loss_first"], m
    steps = [int(p.name.split("-")[1]) for p in complete_checkpoints(recipe.run_dir / "sft")]
    assert steps == [8, 16, 24, 30], "every save_every steps, and always the final step"
    for ckpt in complete_checkpoints(recipe.run_dir / "sft"):
        names = {p.name for p in ckpt.iterdir()}
        assert {
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "trainer_state.json",
            "optimizer.pt",
        } <= names
    assert not any((recipe.run_dir / "sft" / STAGING).glob("checkpoint-*")), "staging must be empty"
    assert entry["outputs"]["model"].endswith("checkpoint-30")
    card = (Path(entry["outputs"]["model"]) / "README.md").read_text()
    data_model = Manifest(recipe.run_dir).stage("data")["outputs"]["model"]
    assert f"Step 30 of the sft stage of the ssp run {recipe.run_name}, trained from `{data_model}`" in card
    assert not (recipe.run_dir / "sft" / STAGING / "README.md").exists(), "TRL's '[None]' card is left"
    acc = m["heldout_greedy_accuracy"]
    assert 0.0 <= acc["final"] <= 1.0 and acc["start"] == 0.0  # random weights solve nothing


def test_loss_is_on_the_assistant_turn_only(tmp_path):
    from transformers import AutoTokenizer
    from trl import SFTTrainer

    from ssp.core.corpus import SFT_FIELDS, load_rows, sft_examples
    from ssp.stages.sft import build_dataset, trl_config

    recipe = fast_recipe(tmp_path)
    run_stage("data", recipe)
    data = Manifest(recipe.run_dir).stage("data")["outputs"]
    tok = AutoTokenizer.from_pretrained(data["model"])
    rows = load_rows(data["sft"], SFT_FIELDS, "sft")
    ds, dropped, _ = build_dataset(sft_examples(rows[:4], ""), tok, 192)
    assert dropped == 0
    trainer = SFTTrainer(
        model=data["model"],
        args=trl_config(recipe, tmp_path / "out"),
        train_dataset=ds,
        processing_class=tok,
    )
    batch = next(iter(trainer.get_train_dataloader()))
    solutions = {s for r in rows[:4] for s in r["solutions"]}
    for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        trained = tok.decode([i for i, lab in zip(ids.tolist(), labels.tolist(), strict=True) if lab != -100])
        assert trained.removesuffix("<|im_end|>\n").removesuffix("<|im_end|>") in solutions, trained
        assert "user" not in trained


def test_over_long_examples_are_dropped_not_truncated(tmp_path):
    from transformers import AutoTokenizer

    from ssp.core.corpus import SFT_FIELDS, load_rows, sft_examples
    from ssp.stages.sft import build_dataset

    recipe = fast_recipe(tmp_path)
    run_stage("data", recipe)
    data = Manifest(recipe.run_dir).stage("data")["outputs"]
    tok = AutoTokenizer.from_pretrained(data["model"])
    examples = sft_examples(load_rows(data["sft"], SFT_FIELDS, "sft"), "")
    ds, dropped, longest = build_dataset(examples, tok, 60)
    assert dropped > 0 and len(ds) + dropped == len(examples) and longest > 60
    for ex in ds:
        assert len(tok.apply_chat_template(ex["prompt"] + ex["completion"], tokenize=True)["input_ids"]) <= 60


def test_bad_row_fails_before_any_training(tmp_path):
    recipe = fast_recipe(tmp_path)
    run_stage("data", recipe)
    corpus = recipe.run_dir / "data" / "sft.jsonl"
    lines = corpus.read_text().splitlines()
    row = json.loads(lines[4])
    del row["answer"]
    lines[4] = json.dumps(row)
    corpus.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"{corpus}: row 5: field 'answer' is missing or empty"):
        execute_here("sft", recipe)
    assert not (recipe.run_dir / "sft" / "checkpoints").exists()
    assert Manifest(recipe.run_dir).stage("sft")["status"] == "failed"


def test_half_written_checkpoints_are_never_picked_up(tmp_path):
    stage = tmp_path / "sft"
    (stage / "checkpoints" / "checkpoint-10").mkdir(parents=True)
    (stage / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    (stage / STAGING / "checkpoint-15").mkdir(parents=True)  # a crash mid-save
    assert latest_checkpoint(stage).name == "checkpoint-10"
    assert [p.name for p in complete_checkpoints(stage)] == ["checkpoint-5", "checkpoint-10"]
    clear_staging(stage)
    assert not (stage / STAGING).exists()


def _job_pids(marker: str) -> list[int]:
    """Live (not zombie) processes carrying ``marker`` in their environment."""
    needle, pids = f"SSP_TEST_JOB={marker}".encode(), []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    pids.append(int(pid))
        except (OSError, PermissionError, IndexError):
            continue
    return pids


def _kill_job(marker: str) -> None:
    """SIGKILL every process carrying ``marker`` in its environment, as a cluster scheduler kills a
    job's cgroup. (torchrun starts workers in sessions of their own, so killpg alone misses them.)"""
    for pid in _job_pids(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue


def _sft_job_until(tmp_path, overrides: list[str], checkpoint: str):
    """Start `ssp stage sft` in a session of its own, its processes marked in their environment,
    and return (process, marker, sft folder) once ``checkpoint`` is published."""
    run_stage("data", fast_recipe(tmp_path, *overrides[1:]))
    sft_dir = tmp_path / "tiny" / "sft"
    marker = uuid.uuid4().hex
    proc = subprocess.Popen(
        ssp_cmd("stage", "sft", str(TINY), *overrides),
        start_new_session=True,
        env={**os.environ, "SSP_TEST_JOB": marker},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while not (sft_dir / "checkpoints" / checkpoint).exists():
        assert proc.poll() is None, "sft ended before it could be interrupted"
        assert time.monotonic() < deadline, f"no {checkpoint} within 240 s"
        time.sleep(0.05)
    return proc, marker, sft_dir


@pytest.mark.slow
def test_killed_sft_resumes_from_its_last_complete_checkpoint(tmp_path):
    """SIGKILL the whole job (launcher, torchrun, worker) mid-training, re-run, and check it resumed."""
    overrides = [
        f"output_root={tmp_path}",
        *FAST,
        "sft.max_steps=50",  # ~10 s of training after checkpoint-10 is published: time to kill it
        "sft.save_every=5",
        "sft.per_device_train_batch_size=4",
        "sft.eval_base=false",
    ]
    proc, marker, sft_dir = _sft_job_until(tmp_path, overrides, "checkpoint-10")
    _kill_job(marker)
    proc.wait()
    time.sleep(0.5)  # let the kernel reap the orphaned worker
    manifest = Manifest(tmp_path / "tiny")
    assert manifest.stage("sft")["status"] == "running"  # killed: never marked complete
    last = latest_checkpoint(sft_dir)
    (sft_dir / STAGING / "checkpoint-999").mkdir(parents=True, exist_ok=True)  # debris of a torn save

    out = subprocess.run(ssp_cmd("stage", "sft", str(TINY), *overrides), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    entry = Manifest(tmp_path / "tiny").stage("sft")
    assert entry["status"] == "completed" and entry["attempts"] == 2
    resumed = entry["metrics"]["resumed_from"]
    assert resumed is not None and int(resumed.rsplit("-", 1)[1]) >= int(last.name.split("-")[1]) >= 10
    assert entry["metrics"]["steps"] == 50
    assert not (sft_dir / STAGING / "checkpoint-999").exists()
    state = json.loads((latest_checkpoint(sft_dir) / "trainer_state.json").read_text())
    assert state["global_step"] == 50


@pytest.mark.slow
def test_killing_ssp_stops_its_torchrun_workers(tmp_path):
    """kill -9 of the `ssp` process group only (the worker runs in a session of its own, as torchrun
    starts it): the worker once went on writing checkpoints into the run for ~40 s. Now every
    process of the job is gone within seconds and no checkpoint appears afterwards."""
    overrides = [f"output_root={tmp_path}", *FAST, "sft.max_steps=2000", "sft.save_every=5"]
    proc, marker, sft_dir = _sft_job_until(tmp_path, overrides, "checkpoint-5")
    assert len(_job_pids(marker)) >= 3  # ssp, torchrun, the worker
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 15
    while _job_pids(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _job_pids(marker) == [], "a process of the killed job is still running"
    published = sorted(p.name for p in (sft_dir / "checkpoints").iterdir())
    time.sleep(2)
    assert sorted(p.name for p in (sft_dir / "checkpoints").iterdir()) == published


def test_a_second_attempt_cannot_run_while_the_first_holds_the_stage(tmp_path):
    from ssp.core.errors import StageError
    from ssp.launch.runner import stage_lock

    recipe = fast_recipe(tmp_path)
    run_stage("data", recipe)
    with stage_lock(recipe.run_dir, "sft"):  # e.g. an orphaned worker still training
        with pytest.raises(StageError, match="stage 'sft' is already running"):
            execute_here("sft", recipe)
    assert not (recipe.run_dir / "sft").exists(), "nothing was touched"


@pytest.mark.slow
def test_greedy_check_scores_against_an_independent_count(tmp_path):
    """The held-out greedy check on a scripted model that always answers 7: right on every "7"
    problem, wrong on every "8" one. A verifier that failed would stop it, not report 0%."""
    from ssp.sampling.greedy import greedy_accuracy

    model = build_scripted_model(tmp_path / "m", p=1.0)
    rows = [
        {"id": str(i), "domain": d, "problem": f"Q{i}", "answer": g}
        for i, (d, g) in enumerate([("a", "7"), ("b", "8")] * 3)
    ]
    result = greedy_accuracy(model, rows, max_new_tokens=4)
    assert result["accuracy"] == 0.5 and result["per_domain"] == {"a": 1.0, "b": 0.0}


@pytest.mark.parametrize("on", [False, True])
def test_the_checkpointing_key_reaches_both_trainers_either_way(tmp_path, on):
    """`false` once meant true: TRL's SFTConfig and GRPOConfig default gradient checkpointing to on,
    and the key was passed only when true (every SFT and RL run recomputed its forward pass)."""
    from ssp.stages.rl import grpo_config
    from ssp.stages.sft import trl_config

    recipe = fast_recipe(tmp_path, f"sft.gradient_checkpointing={on}", f"rl.gradient_checkpointing={on}")
    assert trl_config(recipe, tmp_path / "sft").gradient_checkpointing is on
    assert grpo_config(recipe, recipe.rl.phases[0], tmp_path / "rl").gradient_checkpointing is on
