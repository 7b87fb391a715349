"""What a stage receives from the runner and what it hands back."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ssp.core.cost import BudgetExceeded, CostMeter
from ssp.core.errors import StageError
from ssp.core.outputs import StageOutputs

Out = TypeVar("Out", bound=StageOutputs)


@dataclass
class StageContext:
    name: str
    run_dir: Path
    stage_dir: Path  # run_dir / name; the stage writes only here
    inputs: dict[str, StageOutputs]  # upstream stage name -> what it handed on (core/outputs.py)
    cost: CostMeter | None = None  # the stage's live cost (the runner makes it)
    tracker: Any = None  # the stage's W&B run (launch/tracking.StageTracker): log, summary, finish

    def upstream(self, kind: type[Out]) -> Out:
        """What the upstream stage of this type handed on, e.g. ``ctx.upstream(DataOutputs).eval``."""
        found = self.inputs.get(kind.STAGE)
        if not isinstance(found, kind):
            raise StageError(f"{self.name}: reads the {kind.STAGE} stage's outputs, which it was not given")
        return found

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
    outputs: StageOutputs | None = None  # what later stages read (core/outputs.py); None: nothing
    metrics: dict[str, Any] = field(default_factory=dict)  # numbers for the report
