"""Experiment tracking: one W&B run per stage, grouped by pipeline run, offline by default.

    tracking:
      report_to: wandb     # or none / tensorboard (then no W&B run is made)
      project: ssp
      mode: offline        # WANDB_MODE in the environment wins; `wandb sync runs/<name>/wandb/*` later

Each stage of ``runs/<name>`` is the W&B run ``<name>/<stage>`` in group ``<name>`` (or
``tracking.group``), with the full resolved recipe as its config. Its id is kept in
``<stage>/wandb_run_id``: re-running an interrupted stage resumes the same W&B run. Only rank 0
logs. Trainer stages also go through transformers' ``WandbCallback``, which finds this run
already started and logs into it (its metrics carry a ``train/`` prefix); cost metrics are
logged under ``cost/`` by ``train/telemetry.py``. The settings are ``config/tracking.py``.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

from ssp.config.recipe import to_container

log = logging.getLogger("ssp")


def _init(cfg, **kwargs):
    """``wandb.init`` with the recipe's project, entity and mode (WANDB_MODE in the environment wins)."""
    import wandb

    os.environ.setdefault("WANDB_MODE", cfg.mode)
    os.environ.setdefault("WANDB_SILENT", "true")
    return wandb.init(
        project=cfg.project, entity=cfg.entity, settings=wandb.Settings(console="off"), **kwargs
    )


def _stage_run(recipe, stage: str, **kwargs):
    """The W&B run ``<name>/<stage>`` in the run's group (job type: the stage), under runs/<name>/wandb."""
    (recipe.run_dir / "wandb").mkdir(parents=True, exist_ok=True)
    cfg = recipe.tracking
    return _init(
        cfg,
        group=cfg.group or recipe.run_name,
        job_type=stage,
        name=f"{recipe.run_name}/{stage}",
        dir=str(recipe.run_dir),
        **kwargs,
    )


class StageTracker:
    """The W&B run of one stage, or nothing (``report_to`` is not wandb, or not rank 0)."""

    def __init__(self, run=None):
        self.run = run

    @classmethod
    def start(cls, recipe, stage: str, stage_dir: Path, is_main: bool) -> StageTracker:
        cfg = recipe.tracking
        if cfg.report_to != "wandb" or not is_main:
            return cls()

        id_file = stage_dir / "wandb_run_id"
        run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:12]
        id_file.write_text(run_id)
        run = _stage_run(recipe, stage, id=run_id, resume="allow", config=to_container(recipe))
        log.info("stage %s: W&B run %s (%s mode) in %s", stage, run_id, os.environ["WANDB_MODE"], run.dir)
        return cls(run)

    def log(self, metrics: dict[str, Any], step_key: str | None = None, step: int | None = None) -> None:
        if self.run is not None:
            self.run.log({**metrics, **({step_key: step} if step_key else {})})

    def summary(self, values: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.summary.update(values)

    def finish(self, failed: bool = False) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1 if failed else 0)
            self.run = None


def flat_numbers(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a nested metrics dict, as ``a/b/c`` keys (for a W&B summary)."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_numbers(v, f"{key}/"))
        elif isinstance(v, bool):
            continue
        elif isinstance(v, int | float):
            out[key] = v
    return out


def log_comparison(recipe, folder: Path, result: dict[str, Any], pngs: list[Path]) -> str | None:
    """The sweep's comparison as one more W&B run in the sweep's group (``<sweep>/compare``, job type
    ``compare``) next to every arm's stage runs: one table per benchmark (arm, model, metric, mean,
    95% interval, n, delta), the training curves as a long table (arm, curve, step, mean, min,
    max) to plot in a W&B report, the PNGs, and the costs. Its id, or None when not tracking."""
    cfg = recipe.tracking
    if cfg.report_to != "wandb":
        return None
    import wandb

    run = _init(
        cfg,
        group=cfg.group or folder.name,
        job_type="compare",
        name=f"{folder.name}/compare",
        dir=str(folder),
        config={"baseline": result["baseline"], "arms": {a: v["values"] for a, v in result["arms"].items()}},
    )
    try:
        for bench, by_arm in result["benchmarks"].items():
            table = wandb.Table(
                columns=["arm", "model", "metric", "mean", "ci95", "n", "delta", "delta_ci95"]
            )
            for arm, models in by_arm.items():
                for model, row in models.items():
                    for metric, m in row.items():
                        if isinstance(m, dict) and "mean" in m:
                            d = row.get("delta", {}).get(metric) or {}
                            table.add_data(
                                arm, model, metric, m["mean"], m["ci95"], m["n"], d.get("mean"), d.get("ci95")
                            )
            run.log({f"compare/{bench}": table})
        curves = wandb.Table(columns=["arm", "curve", "step", "mean", "min", "max"])
        for curve, by_arm in result.get("curves", {}).items():
            for arm, c in by_arm.items():
                for i, step in enumerate(c["step"]):
                    curves.add_data(arm, curve, step, c["mean"][i], c["min"][i], c["max"][i])
        run.log({"compare/curves": curves, **{f"compare/{p.stem}": wandb.Image(str(p)) for p in pngs}})
        run.summary.update(flat_numbers({a: v["cost"] for a, v in result["arms"].items()}, "cost/"))
        return run.id
    finally:
        run.finish()


def log_shared_stage(recipe, stage: str, folder: Path, entry: dict[str, Any]) -> str | None:
    """A stage this run shares from another (``launch/runner.py: adopt``) as a W&B run of this run's
    group too (``<name>/<stage>``, tag ``shared``): its metrics, its donor, and the trainers' curves
    replayed from the donor's ``log_history.json`` files. Without it a sweep's group lacked the
    stages its arms inherited (they stayed in the donor's group). Its id, or None when not tracking."""
    cfg = recipe.tracking
    if cfg.report_to != "wandb":
        return None
    import json

    run = _stage_run(
        recipe, stage, tags=["shared"], config={**to_container(recipe), "shared_from": str(folder)}
    )
    try:
        for history in sorted(folder.rglob("log_history.json")):
            if "checkpoint-" in str(history.relative_to(folder)):
                continue
            part = history.parent.relative_to(folder).as_posix()
            prefix = "train/" if part == "." else f"train/{part}/"
            for row in json.loads(history.read_text()):
                numbers = flat_numbers({k: v for k, v in row.items() if k != "step"}, prefix)
                if numbers:
                    run.log(numbers)
        run.summary.update({**flat_numbers(entry.get("metrics") or {}), "shared_from": str(folder)})
        return run.id
    finally:
        run.finish()
