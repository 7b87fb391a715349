"""What preflight collects before the first stage runs: each stage's own checks add to one ``Checks``.

    def preflight(recipe, checks):                       # in a stage's module (stages/spec.py)
        checks.file(recipe.sft.deepspeed, "sft.deepspeed")
        checks.model(recipe.model.name_or_path, "model.name_or_path")
        if recipe.sft.bf16:
            checks.gpu_only("sft.bf16=true")

The stage says *what* it will read or need; ``launch/preflight.py`` asks the hub about every hub
reference at once, checks the GPU-only settings and the code sandbox once for all stages, and
raises one ``RecipeError`` listing every problem (duplicates said once: two stages may read the
same file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssp.core.errors import DataError
from ssp.core.manifest import Manifest
from ssp.core.references import HUB_ID, looks_local


@dataclass(frozen=True)
class HubRef:
    key: str  # the recipe key that names it, for the message
    ref: str  # the hub id
    kind: str  # "model" or "dataset"


@dataclass
class Checks:
    stages: list[str]  # the stages this invocation runs, in order
    manifest: Manifest  # the run's record: what completed before
    problems: list[str] = field(default_factory=list)
    hub: list[HubRef] = field(default_factory=list)  # asked together at the end (one wait at most)
    gpu_settings: list[str] = field(default_factory=list)  # "key=value" only a CUDA GPU runs
    auto_processes: list[str] = field(default_factory=list)  # "key=auto": 1 CPU process without GPUs
    code_rewards: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (key, options)

    def runs(self, *names: str) -> bool:
        """Whether any of ``names`` runs in this invocation."""
        return any(n in self.stages for n in names)

    def problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)

    def file(self, ref: str | None, key: str) -> None:
        if ref and not Path(ref).exists():
            self.problem(f"{key}: file not found: {ref}")

    def model(self, ref: str, key: str, aliases: tuple[str, ...] = ()) -> None:
        """A model reference: a complete local model folder, or a hub id (asked at the end)."""
        from ssp.core.model_folder import check_model_folder

        if looks_local(ref):
            try:
                check_model_folder(ref)
            except DataError as err:
                self.problem(f"{key}: {err}")
        elif HUB_ID.match(ref):
            self.hub.append(HubRef(key, ref, "model"))
        else:
            known = f"a model alias ({', '.join(aliases)}), " if aliases else ""
            self.problem(f"{key}: {ref!r} is neither {known}a model folder here, nor a hub id (owner/name)")

    def dataset(self, ref: str, key: str) -> None:
        """A dataset reference: a local file or folder, or a hub id (asked at the end)."""
        if looks_local(ref):
            self.file(ref, key)
        elif ref:
            self.hub.append(HubRef(key, ref, "dataset"))

    def gpu_only(self, setting: str) -> None:
        if setting not in self.gpu_settings:
            self.gpu_settings.append(setting)

    def code_reward(self, key: str, options: dict[str, Any]) -> None:
        """A code_tests reward the stage builds: refused later if its sandbox cannot start here."""
        if key not in [k for k, _ in self.code_rewards]:
            self.code_rewards.append((key, options))
