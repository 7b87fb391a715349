"""Recipe schema of ``ssp sweep``: an ablation written down in the recipe it ablates.

    sweep:
      grid: {rl.lam: [0.0, 1.0, 4.0]}   # recipe key -> the values of its arms (every combination)
      presets: []                       # or [entropy], [diversity], [probing]: the paper's ablations
      seeds: [0, 1, 2]
      name: lam                         # runs/<name>/; empty = <run_name>-sweep
      jobs: 1                           # arms at once

``ssp sweep RECIPE`` runs it; ``--grid``/``--preset``, ``--seeds``, ``--name``, ``--jobs`` on the
command line replace the recipe's values (the command line wins, as for every other key). The
sweep itself is ``launch/sweep.py``. No stage reads this section: it is in no stage's fingerprint,
so adding it to a recipe does not make completed stages stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ssp.core.errors import check


@dataclass
class SweepConfig:
    """The arms and seeds of an ablation (``ssp sweep``)."""

    grid: dict[str, list[Any]] = field(default_factory=dict)
    """Recipe key -> its values; every combination of values is one arm."""
    presets: list[str] = field(default_factory=list)
    """Named ablations of the paper read from the recipe's values: entropy, diversity, probing."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Each arm runs once per seed; a seed is added to every ``seed_keys`` key."""
    seed_keys: list[str] = field(default_factory=lambda: ["sft.seed", "rl.seed"])
    """The keys a seed offsets: the training randomness (data and evaluation sets stay fixed)."""
    name: str = ""
    """Sweep folder under output_root; empty = <run_name>-sweep."""
    jobs: int = 1
    """Arms run at once, each in its own process (1 = one after another). Arms that would run an
    identical stage at the same moment wait for each other and share it."""
    gpus_per_arm: int | None = None
    """GPUs each concurrent arm gets (CUDA_VISIBLE_DEVICES); None = the visible GPUs / jobs."""

    def __post_init__(self):
        check(self, "jobs", self.jobs >= 1, f"must be >= 1, got {self.jobs}")
        check(self, "seeds", bool(self.seeds), "needs at least one seed")
        check(self, "seeds", len(set(self.seeds)) == len(self.seeds), f"a seed is repeated: {self.seeds}")
        check(
            self,
            "gpus_per_arm",
            self.gpus_per_arm is None or self.gpus_per_arm >= 1,
            f"must be >= 1 or null, got {self.gpus_per_arm}",
        )
        for key, values in self.grid.items():
            check(self, "grid", bool(values), f"{key}: no values")
