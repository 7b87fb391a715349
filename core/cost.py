"""What a run costs: GPU-hours (or CPU-core-hours) and US dollars, per stage and for the pipeline.

    meter = CostMeter(recipe.cost, detect_hardware(world_size=8), state_file, earlier={"usd": 3.1, ...})
    meter.metrics()   # {"cost/gpu_hours": ..., "cost/usd": ..., "cost/pipeline_gpu_hours": ..., ...}

GPU-hours = GPUs x wall hours (one GPU per process, the processes of every node counted), priced
at ``cost.price_per_gpu_hour`` (default $2.00, the report's H800 price: 3,900 GPU-hours for
$7,800). A run without CUDA is charged CPU-core-hours = cores available to the process x wall
hours, at ``cost.price_per_cpu_core_hour``, and never calls them GPU-hours: its metrics are
``cost/cpu_core_hours`` and ``cost/pipeline_cpu_core_hours``.

Departures, on purpose:
- Wall time is counted from the start of the stage's work in the worker, not from job
  submission (scheduler queueing and torchrun start-up are not billed here).
- An interrupted stage keeps what it spent: the meter writes its elapsed time to
  ``<stage>/cost.json`` at most every ``SAVE_EVERY_S`` seconds and a resumed attempt adds to
  it (at most that much is lost to a SIGKILL). A stage folder replaced by a new config starts
  from zero; its spend stays in the moved-aside folder.
- The pipeline totals add the stage to the costs the manifest records for the other
  completed stages.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ssp.core.atomic import write_atomic
from ssp.core.errors import SSPError, check

SAVE_EVERY_S = 10.0

# The reference run (docs/method.md): SFT + RL together, no split between stages published.
REFERENCE = {"name": "VibeThinker-1.5B (report)", "gpu": "H800", "gpu_hours": 3900.0, "usd": 7800.0}


@dataclass
class CostConfig:
    """GPU-hour and dollar accounting of every stage (logged live as cost/*)."""

    price_per_gpu_hour: float = 2.0
    """USD per GPU-hour (the report prices its H800 hours at $2.00)."""
    price_per_cpu_core_hour: float = 0.05
    """USD per CPU-core-hour when no GPU is used (our choice: roughly an on-demand cloud vCPU-hour)."""
    max_usd: float | None = None
    """Budget for the whole pipeline: once its cumulative cost crosses this, the running stage saves
    a checkpoint and stops with a message; raise it and re-run to resume. None = no budget."""
    gpu_type: str = ""
    """GPU name recorded with the cost; empty = detected (torch.cuda.get_device_name)."""

    def __post_init__(self):
        check(self, "price_per_gpu_hour", self.price_per_gpu_hour >= 0, "must be >= 0")
        check(self, "price_per_cpu_core_hour", self.price_per_cpu_core_hour >= 0, "must be >= 0")
        check(self, "max_usd", self.max_usd is None or self.max_usd > 0, "must be > 0 (or null: no budget)")


class BudgetExceeded(SSPError):
    """The pipeline's cost crossed ``cost.max_usd``: the stage saved its work and stopped."""


@dataclass(frozen=True)
class Hardware:
    kind: str  # "gpu" or "cpu"
    count: int  # GPUs (all processes) or CPU cores
    name: str  # GPU type or CPU model

    @property
    def unit(self) -> str:
        return "gpu_hours" if self.kind == "gpu" else "cpu_core_hours"

    @property
    def unit_label(self) -> str:
        return unit_label(self.unit)


def unit_label(unit: str) -> str:
    """How a cost unit is written for people: a CPU run never says GPU-hours."""
    return "GPU-hours" if unit == "gpu_hours" else "CPU-core-hours"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "cpu"


def detect_hardware(world_size: int = 1, gpu_type: str = "") -> Hardware:
    """One GPU per process where CUDA is available; otherwise the CPU cores this process may use."""
    import torch

    if torch.cuda.is_available():
        return Hardware("gpu", max(1, world_size), gpu_type or torch.cuda.get_device_name(0))
    return Hardware("cpu", len(os.sched_getaffinity(0)), _cpu_name())


class CostMeter:
    """Wall-clock cost of one stage; ``clock`` is injectable (tests use a fake one)."""

    def __init__(
        self,
        cfg: CostConfig,
        hardware: Hardware,
        state_file: Path | None = None,
        earlier: dict[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        writable: bool = True,
    ):
        self.cfg, self.hardware, self.state_file, self.clock = cfg, hardware, state_file, clock
        self.writable = writable  # only rank 0 writes the state file; every rank reads it
        self.earlier = earlier or {}
        self.prior_seconds = 0.0
        if state_file is not None and state_file.is_file():
            self.prior_seconds = float(json.loads(state_file.read_text()).get("seconds", 0.0))
        self.started = clock()
        self._saved_at = self.started

    @property
    def price(self) -> float:
        gpu = self.hardware.kind == "gpu"
        return self.cfg.price_per_gpu_hour if gpu else self.cfg.price_per_cpu_core_hour

    def seconds(self) -> float:
        return self.prior_seconds + self.clock() - self.started

    def hours(self) -> float:
        """GPU-hours (or CPU-core-hours) of this stage so far, earlier attempts included."""
        return self.hardware.count * self.seconds() / 3600.0

    def usd(self) -> float:
        return self.hours() * self.price

    def pipeline_usd(self) -> float:
        return self.earlier.get("usd", 0.0) + self.usd()

    def metrics(self) -> dict[str, float]:
        """The live cost metrics (stage and pipeline), saving the elapsed time now and then."""
        self.save(force=False)
        unit = self.hardware.unit
        return {
            f"cost/{unit}": self.hours(),
            "cost/usd": self.usd(),
            f"cost/pipeline_{unit}": self.earlier.get(unit, 0.0) + self.hours(),
            "cost/pipeline_usd": self.pipeline_usd(),
        }

    def over_budget(self) -> bool:
        return self.cfg.max_usd is not None and self.pipeline_usd() >= self.cfg.max_usd

    def budget_message(self, stage: str, where: str) -> str:
        return (
            f"stage {stage!r} stopped: the pipeline has cost {usd(self.pipeline_usd())}, over its budget "
            f"cost.max_usd={self.cfg.max_usd:g}; {where}. Raise cost.max_usd (or set it to null) and "
            f"re-run the same command to resume."
        )

    def save(self, force: bool = True) -> None:
        now = self.clock()
        if (
            not self.writable
            or self.state_file is None
            or (not force and now - self._saved_at < SAVE_EVERY_S)
        ):
            return
        self._saved_at = now
        write_atomic(self.state_file, json.dumps({"seconds": self.seconds()}))

    def record(self) -> dict:
        """The stage's cost as the manifest keeps it."""
        self.save()
        return {
            "device": self.hardware.kind,
            "hardware": self.hardware.name,
            "count": self.hardware.count,
            "unit": self.hardware.unit,
            "seconds": round(self.seconds(), 3),
            "hours": self.hours(),
            "price_per_hour": self.price,
            "usd": self.usd(),
        }


def usd(amount: float) -> str:
    """Dollars with cents, or with four decimals below a dollar (a CPU run costs fractions of a cent)."""
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}"


def totals(records: list[dict]) -> dict[str, float]:
    """Sum of stage cost records: usd, and hours per unit (gpu_hours, cpu_core_hours)."""
    out: dict[str, float] = {"usd": 0.0}
    for r in records:
        out["usd"] += r["usd"]
        out[r["unit"]] = out.get(r["unit"], 0.0) + r["hours"]
    return out
