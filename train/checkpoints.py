"""Atomic checkpoints (the SFT and RL stages): written under a staging folder, renamed into place
once complete.

The Trainer writes ``<stage>/_staging/checkpoint-N`` (weights, tokenizer, optimizer, scheduler,
RNG, trainer state; DeepSpeed shards from every rank). When the save has finished on every
rank, rank 0 renames it to ``<stage>/checkpoints/checkpoint-N`` (one ``rename``: atomic on a
POSIX filesystem). Anything under ``checkpoints/`` is therefore complete, and a crash can only
leave debris under ``_staging/``, which the next attempt deletes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from transformers import TrainerCallback

CHECKPOINTS, STAGING = "checkpoints", "_staging"
_CKPT = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_step(path: str | Path) -> int | None:
    """The training step of a ``.../checkpoint-N`` folder, or None for any other name."""
    m = _CKPT.match(Path(path).name)
    return int(m.group(1)) if m else None


def complete_checkpoints(stage_dir: Path) -> list[Path]:
    """Complete checkpoints of a stage, by step."""
    root = Path(stage_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(step, p) for p in root.iterdir() if p.is_dir() and (step := checkpoint_step(p)) is not None]
    return [p for _, p in sorted(found)]


def latest_checkpoint(stage_dir: Path) -> Path | None:
    ckpts = complete_checkpoints(stage_dir)
    return ckpts[-1] if ckpts else None


def clear_staging(stage_dir: Path) -> None:
    """Delete half-written checkpoints of an interrupted attempt (rank 0, before training)."""
    shutil.rmtree(Path(stage_dir) / STAGING, ignore_errors=True)


def barrier() -> None:
    """Wait for every rank (a no-op outside a distributed job)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


class AtomicCheckpoints(TrainerCallback):
    """Publish each checkpoint by rename once every rank has written its part; save the last step."""

    def __init__(self, stage_dir: Path, what: str, start_model: str):
        self.staging = Path(stage_dir) / STAGING
        self.final = Path(stage_dir) / CHECKPOINTS
        self.what, self.start_model = what, start_model  # for the model card

    def _model_card(self, folder: Path, step: int) -> None:
        """A card that says what the checkpoint is (``what``: "the sft stage of the ssp run tiny").
        TRL's card (written to the staging folder, the Trainer's output_dir) calls a model started
        from a local folder "a fine-tuned version of [None]": it is removed."""
        (self.staging / "README.md").unlink(missing_ok=True)
        (folder / "README.md").write_text(
            f"# checkpoint-{step}\n\nStep {step} of {self.what}, trained from `{self.start_model}`. "
            "The run's `manifest.json` and `recipe.yaml` say how.\n"
        )

    def on_step_end(self, args, state, control, **kwargs):
        if state.max_steps and state.global_step >= state.max_steps:
            control.should_save = True  # the final step is always a checkpoint
        return control

    def on_save(self, args, state, control, **kwargs):
        barrier()  # every rank has finished writing its shards
        if state.is_world_process_zero:
            name = f"checkpoint-{state.global_step}"
            self.final.mkdir(parents=True, exist_ok=True)
            os.replace(self.staging / name, self.final / name)
            self._model_card(self.final / name, state.global_step)
        barrier()
        return control


class TrainingFolder:
    """The folder one training run writes (the SFT stage's, an RL phase's): the scaffolding both share.
    ``staging`` is the Trainer's output_dir, ``checkpoints/`` holds the complete checkpoints
    (``AtomicCheckpoints``), ``log_history.json`` the logged steps once training ends; the cost
    callback stops training at the budget and ``raise_if_over_budget`` says so afterwards."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.staging = self.path / STAGING
        self.history_file = self.path / "log_history.json"
        self._budget = None

    def resume_point(self, is_main: bool) -> Path | None:
        """The latest complete checkpoint to resume from (None: start), after rank 0 has deleted the
        half-written ones of an interrupted attempt."""
        resume = latest_checkpoint(self.path)
        if is_main:
            clear_staging(self.path)
        return resume

    def callbacks(self, ctx, what: str, start_model: str) -> list[TrainerCallback]:
        """Atomic checkpoints (their model card says ``what``, trained from ``start_model``) and the
        live cost with its budget stop."""
        from ssp.train.telemetry import CostCallback

        self._budget = CostCallback(ctx)
        return [AtomicCheckpoints(self.path, what, start_model), self._budget]

    def raise_if_over_budget(self) -> None:
        if self._budget is not None:
            self._budget.raise_if_stopped(str(self.path / CHECKPOINTS))

    def save_history(self, history: list[dict], is_main: bool) -> None:
        if is_main:
            self.history_file.write_text(json.dumps(history, indent=2))
