"""Recipe schema of experiment tracking (the tracker itself is ``launch/tracking.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from ssp.core.errors import check


@dataclass
class TrackingConfig:
    """Where metrics go: W&B (one run per stage, one group per pipeline run), TensorBoard, or nowhere."""

    report_to: str = "none"
    """'none', 'wandb' or 'tensorboard' (passed to the trainers under transformers' name)."""
    project: str = "ssp"
    """W&B project."""
    entity: str | None = None
    """W&B entity (team or user); None = your default."""
    group: str = ""
    """W&B group of the pipeline's stage runs; empty = run_name."""
    mode: str = "offline"
    """W&B mode: 'offline' (no network; `wandb sync` later), 'online' or 'disabled'. WANDB_MODE wins."""

    def __post_init__(self):
        check(
            self,
            "report_to",
            self.report_to in ("none", "wandb", "tensorboard"),
            f"must be none, wandb or tensorboard, got {self.report_to!r}",
        )
        check(
            self,
            "mode",
            self.mode in ("offline", "online", "disabled"),
            f"must be offline, online or disabled, got {self.mode!r}",
        )
