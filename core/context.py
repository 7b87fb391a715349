"""What a stage receives from the runner and what it hands back."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssp.core.cost import BudgetExceeded, CostMeter


@dataclass
class StageContext:
    name: str
    run_dir: Path
    stage_dir: Path  # run_dir / name; the stage writes only here
    inputs: dict[str, dict[str, Any]]  # upstream stage name -> its recorded outputs
    cost: CostMeter | None = None  # the stage's live cost (the runner makes it)
    tracker: Any = None  # the stage's W&B run (launch/tracking.StageTracker): log, summary, finish

    @property
    def rank(self) -> int:
        return int(os.environ.get("RANK", "0"))

    @property
    def world_size(self) -> int:
        return int(os.environ.get("WORLD_SIZE", "1"))

    def log(self, metrics: dict[str, Any]) -> None:
        """Log metrics to the stage's W&B run (if any) together with the live cost."""
        if self.tracker is not None:
            self.tracker.log({**metrics, **(self.cost.metrics() if self.cost else {})})

    def check_budget(self, where: str) -> None:
        """Stop the stage (BudgetExceeded) if the pipeline has crossed cost.max_usd; ``where`` says
        what was saved, for the message."""
        if self.cost is not None and self.cost.over_budget():
            self.stop_for_budget(where)

    def stop_for_budget(self, where: str) -> None:
        """Raise BudgetExceeded with the budget message (the caller knows the budget was crossed)."""
        raise BudgetExceeded(self.cost.budget_message(self.name, where))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class StageResult:
    outputs: dict[str, Any] = field(default_factory=dict)  # paths later stages read
    metrics: dict[str, Any] = field(default_factory=dict)  # numbers for the report
