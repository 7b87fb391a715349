"""The pipeline on CUDA: the tiny recipe end to end, the one-GPU recipe, DeepSpeed ZeRO-2/3 on one
GPU, and the reward pool under a main module that holds a CUDA context. Prints wall times."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ssp.core.manifest import Manifest

from .conftest import GPU, ROOT, figure, gpu_name, has_vllm, ssp

pytestmark = GPU

TINY = ROOT / "recipes" / "tiny.yaml"
ONE_GPU = ROOT / "recipes" / "one_gpu.yaml"


def _engine() -> list[str]:
    # the lent GPU machines carry no vLLM (too big to ship there): transformers generate instead
    return [] if has_vllm() else ["generation.backend=hf", "rl.rollout.engine=hf"]


def _sandbox(recipe) -> list[str]:
    """The tiny recipe's code rewards (probe, RL's code phase, tiny_code) with `sandbox: unsafe` where
    bubblewrap is missing: the lent GPU machines have none, and strict mode would refuse (the
    preflight says so). The programs are the tiny model's, run as their own uid with limits."""
    from ssp.reward.sandbox import isolation

    if recipe != TINY or isolation()["bubblewrap"]:
        return []
    return [
        "probe.reward.options.domains.code.options.sandbox=unsafe",
        "rl.phases[1].rewards[0].options.sandbox=unsafe",
        "eval.benchmarks[1].reward_options.sandbox=unsafe",
    ]


def _completed(run_dir, stages) -> dict:
    manifest = Manifest(run_dir)
    out = {}
    for name in stages:
        entry = manifest.stage(name)
        assert entry and entry["status"] == "completed", (name, entry)
        out[name] = entry["wall_seconds"]
    return out


@pytest.mark.parametrize("recipe", [TINY, ONE_GPU], ids=["tiny", "one_gpu"])
def test_a_recipe_runs_every_stage_on_cuda(tmp_path, recipe):
    """`ssp run` of the tiny recipe (the demo) and of recipes/one_gpu.yaml (a larger model, a few
    hundred steps): every stage completes on the GPU; the eval table is printed; wall time per stage."""
    out, wall = ssp(
        "run",
        str(recipe),
        f"output_root={tmp_path}",
        "tracking.report_to=none",
        *_engine(),
        *_sandbox(recipe),
    )
    assert out.returncode == 0, out.stderr[-4000:]
    run_name = "tiny" if recipe == TINY else "one_gpu"
    walls = _completed(tmp_path / run_name, ["data", "sft", "probe", "merge", "rl", "eval"])
    assert "| signal" in out.stdout, out.stdout[-3000:]
    if recipe == TINY:
        assert "tiny_code" in out.stdout, out.stdout[-3000:]
    figure(f"{run_name} on {gpu_name()}", f"{wall:.0f} s in all; per stage {walls}")
    print(out.stdout[-3000:])


@pytest.mark.parametrize("zero", ["zero2", "zero3"])
def test_deepspeed_zero_on_one_gpu(tmp_path, zero):
    """The recipe's DeepSpeed configs on one GPU, bf16: 8 SFT steps, finite losses, the ZeRO
    checkpoint layout, the greedy eval after it (ZeRO-3 hung there once on CPU)."""
    common = [f"output_root={tmp_path}", "tracking.report_to=none", "generation.backend=hf"]
    out, _ = ssp("stage", "data", str(TINY), *common)
    assert out.returncode == 0, out.stderr[-3000:]
    sft = [
        f"sft.deepspeed={ROOT}/recipes/deepspeed/{zero}.json",
        "sft.bf16=true",
        "sft.max_steps=8",
        "sft.save_every=8",
        "sft.logging_steps=1",  # a loss per step: first and last differ (one logged entry read 6.304 -> 6.304)
        "sft.eval_limit=32",
    ]
    out, wall = ssp("stage", "sft", str(TINY), *common, *sft)
    assert out.returncode == 0, out.stderr[-4000:]
    run = tmp_path / "tiny"
    entry = Manifest(run).stage("sft")
    assert entry["status"] == "completed" and entry["metrics"]["steps"] == 8
    history = json.loads((run / "sft" / "log_history.json").read_text())
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses and all(v == v and abs(v) < 1e4 for v in losses), losses
    shards = sorted(p.name for p in (run / "sft" / "checkpoints" / "checkpoint-8").glob("global_step8/*"))
    assert any("optim_states" in s for s in shards), shards
    figure(f"sft {zero} 1 GPU", f"{wall:.0f} s (8 steps + eval); losses {losses[0]:.3f} -> {losses[-1]:.3f}")


def test_the_reward_pool_scores_under_a_main_module_holding_a_cuda_context(tmp_path):
    """The failure seen on a GPU machine: a stage's main module imports CUDA torch (17 GB of address
    space) before the reward pool starts its workers. Here the main module also creates a CUDA
    context first. Known answers must score right (it was 0.0 for all)."""
    script = (ROOT / "launch" / "doctor_roundtrip.py").read_text()
    script = script.replace("\nmain()  #", '\ntorch.zeros(1, device="cuda")\nmain()  #')
    assert 'device="cuda"' in script
    main = tmp_path / "stage_like_main.py"
    main.write_text(script)
    out = subprocess.run(
        [sys.executable, str(main)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        # prepended, not replaced: a GPU machine may carry its packages on PYTHONPATH (docs/install.md)
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        },
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["math_correctness"]["scores"] == [1.0, 0.0], result
    assert result["code_tests"]["scores"] == [1.0, 0.0], result  # unsafe where bubblewrap is missing
    figure("reward pool under a CUDA main module", result)
