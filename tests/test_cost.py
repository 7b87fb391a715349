"""Cost accounting: arithmetic with a fake clock, resume, the budget, and the budget stop of a real
SFT run (through `ssp stage`, torchrun and all) that then resumes, with its W&B run (offline) kept
across both attempts."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from ssp.core.cost import CostConfig, CostMeter, Hardware, detect_hardware, totals
from ssp.core.manifest import Manifest
from ssp.launch.runner import execute_here

from .conftest import FAST, TINY, fast_recipe, ssp_cmd
from .helpers.wandb_records import history, run_info


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_gpu_hours_and_usd_with_a_fake_clock():
    clock = FakeClock()
    meter = CostMeter(CostConfig(), Hardware("gpu", 8, "NVIDIA H800"), clock=clock)
    clock.t += 1.5 * 3600  # 1.5 h on 8 GPUs
    assert meter.hours() == pytest.approx(12.0)
    assert meter.usd() == pytest.approx(24.0)  # $2.00 per GPU-hour, the report's price
    m = meter.metrics()
    assert m == pytest.approx(
        {"cost/gpu_hours": 12.0, "cost/usd": 24.0, "cost/pipeline_gpu_hours": 12.0, "cost/pipeline_usd": 24.0}
    )


def test_the_reference_run_price():
    """3,900 H800 GPU-hours at the default price is the report's $7,800."""
    clock = FakeClock()
    meter = CostMeter(CostConfig(), Hardware("gpu", 3900, "H800"), clock=clock)
    clock.t += 3600
    assert meter.usd() == pytest.approx(7800.0)


def test_cpu_runs_are_cpu_core_hours_never_gpu_hours():
    clock = FakeClock()
    cfg = CostConfig(price_per_cpu_core_hour=0.05)
    meter = CostMeter(
        cfg, Hardware("cpu", 2, "AMD EPYC"), clock=clock, earlier={"usd": 1.0, "cpu_core_hours": 4.0}
    )
    clock.t += 3 * 3600
    m = meter.metrics()
    assert not any("gpu" in k for k in m)
    assert m["cost/cpu_core_hours"] == pytest.approx(6.0)
    assert m["cost/usd"] == pytest.approx(0.30)
    assert m["cost/pipeline_cpu_core_hours"] == pytest.approx(10.0)
    assert m["cost/pipeline_usd"] == pytest.approx(1.30)
    assert meter.record()["unit"] == "cpu_core_hours"


def test_an_interrupted_stage_keeps_what_it_spent(tmp_path):
    clock = FakeClock()
    state = tmp_path / "cost.json"
    first = CostMeter(CostConfig(), Hardware("gpu", 4, "H100"), state, clock=clock)
    clock.t += 1800
    first.metrics()  # more than SAVE_EVERY_S since the start: saved
    assert json.loads(state.read_text())["seconds"] == pytest.approx(1800)
    second = CostMeter(CostConfig(), Hardware("gpu", 4, "H100"), state, clock=clock)
    clock.t += 1800
    assert second.hours() == pytest.approx(4.0)  # 1 h of 4 GPUs, over two attempts


def test_budget_counts_the_whole_pipeline():
    clock = FakeClock()
    cfg = CostConfig(max_usd=10.0)
    meter = CostMeter(cfg, Hardware("gpu", 1, "H100"), clock=clock, earlier={"usd": 9.0})
    clock.t += 1700  # $0.94 this stage, $9.94 in all
    assert not meter.over_budget()
    clock.t += 100  # $1.00 this stage: the pipeline reaches $10.00
    assert meter.over_budget()
    assert "cost.max_usd=10" in meter.budget_message("sft", "checkpoint-3 is saved")


def test_totals_and_detection():
    recs = [
        {"usd": 1.0, "unit": "gpu_hours", "hours": 2.0},
        {"usd": 0.5, "unit": "gpu_hours", "hours": 1.0},
        {"usd": 0.1, "unit": "cpu_core_hours", "hours": 3.0},
    ]
    assert totals(recs) == pytest.approx({"usd": 1.6, "gpu_hours": 3.0, "cpu_core_hours": 3.0})
    import torch

    hw = detect_hardware(world_size=4)
    assert hw.kind == ("gpu" if torch.cuda.is_available() else "cpu")
    assert hw.count >= 1 and hw.name


def test_recipe_rejects_a_bad_budget():
    from ssp.config.recipe import load_recipe
    from ssp.core.errors import RecipeError

    with pytest.raises(RecipeError, match=r"cost.max_usd: must be > 0"):
        load_recipe(None, ["cost.max_usd=-1"])


@pytest.mark.slow
def test_budget_stop_saves_a_checkpoint_then_resumes_the_same_wandb_run(tmp_path):
    """A price so high that the first optimizer step crosses cost.max_usd: SFT saves checkpoint-1,
    stops with the budget message, once, as the one line of an `ssp: error:` (no torchrun traceback,
    no repeat); re-running without the budget resumes from checkpoint-1 into the same (offline) W&B
    run, whose file holds the cost metrics and the recipe as config."""
    overrides = ["tracking.report_to=wandb", "cost.price_per_cpu_core_hour=1000000"]
    recipe = fast_recipe(tmp_path, *overrides, "cost.max_usd=1")
    execute_here("data", recipe)
    stop = subprocess.run(
        ssp_cmd("stage", "sft", str(TINY), f"output_root={tmp_path}", *FAST, *overrides, "cost.max_usd=1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert stop.returncode == 2, stop.stderr[-3000:]
    errors = [line for line in stop.stderr.splitlines() if "ssp: error:" in line]
    assert len(errors) == 1 and re.search(r"cost.max_usd=1.*checkpoint-1 is saved", errors[0]), stop.stderr[
        -3000:
    ]
    assert "stopped" in errors[0] and errors[0].count("over its budget") == 1
    for noise in ("Traceback", "ChildFailedError", "torchrun exited", "{'loss'"):
        assert noise not in stop.stderr, stop.stderr[-3000:]
    assert re.search(r"ssp sft step 1/\d+: loss [\d.]+ \| lr .* \| \$ \d", stop.stderr), stop.stderr[-3000:]
    sft_dir = recipe.run_dir / "sft"
    assert (sft_dir / "checkpoints" / "checkpoint-1").is_dir()
    entry = Manifest(recipe.run_dir).stage("sft")
    assert entry["status"] == "failed" and "BudgetExceeded" in entry["error"]
    assert entry["cost"]["usd"] > 1
    run_id = (sft_dir / "wandb_run_id").read_text()

    resumed = fast_recipe(tmp_path, *overrides)  # no budget
    result = execute_here("sft", resumed)
    assert result.metrics["resumed_from"].endswith("checkpoint-1")
    assert (sft_dir / "wandb_run_id").read_text() == run_id
    # one folder per attempt (named by the second it started), same run id: `wandb sync` merges them
    files = sorted(
        (recipe.run_dir / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"),
        key=lambda f: f.stat().st_mtime,
    )
    assert files, sorted(p.name for p in (recipe.run_dir / "wandb").iterdir())
    info = run_info(files[-1])
    assert info["group"] == recipe.run_name and info["name"] == f"{recipe.run_name}/sft"
    assert info["config"]["sft"]["max_steps"] == 8 and info["config"]["run_name"] == recipe.run_name
    rows = history(files[-1])
    costs = [r["cost/usd"] for r in rows if "cost/usd" in r]
    assert costs and all(c > 1 for c in costs)  # the resumed attempt starts from the first one's spend
    assert any("perf/tokens_per_second" in r for r in rows)
    assert any("train/loss" in r for r in rows)  # transformers' WandbCallback logged into the same run
    assert Manifest(recipe.run_dir).stage("sft")["cost"]["seconds"] > entry["cost"]["seconds"]
