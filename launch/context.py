"""What a stage receives from the runner and what it hands back."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StageContext:
    name: str
    run_dir: Path
    stage_dir: Path  # run_dir / name; the stage writes only here
    inputs: dict[str, dict[str, Any]]  # upstream stage name -> its recorded outputs

    @property
    def rank(self) -> int:
        return int(os.environ.get("RANK", "0"))

    @property
    def world_size(self) -> int:
        return int(os.environ.get("WORLD_SIZE", "1"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class StageResult:
    outputs: dict[str, Any] = field(default_factory=dict)  # paths later stages read
    metrics: dict[str, Any] = field(default_factory=dict)  # numbers for the report
