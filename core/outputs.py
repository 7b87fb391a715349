"""What each stage hands on: one typed record per stage, the only definition of a stage's outputs.

A stage returns one of these in its ``StageResult``; the runner writes it to the manifest
(``to_record``) and reads it back for the next stage (``Manifest.outputs`` -> ``read_outputs``), and
``StageContext.upstream(SFTOutputs)`` hands it to a stage; the report and the curves read the same
types. Paths are strings (the manifest is JSON). A record whose fields do not match its type (written
by another version of ssp, or edited by hand) stops with the stage's name and the fields, instead of
being read as something else.

The merge stage hands on the spectrum model's held-out scores as data (``MergeOutputs.heldout``),
which RL compares its own result against; it used to hand on a file and a display label to look
them up by.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ssp.core.errors import DataError

# stage name -> its outputs type: filled as each type is defined (here, or in a new stage's module)
OUTPUTS: dict[str, type[StageOutputs]] = {}


@dataclass(frozen=True)
class StageOutputs:
    STAGE: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.STAGE:
            return
        if cls.STAGE in OUTPUTS and OUTPUTS[cls.STAGE] is not cls:
            raise TypeError(f"two outputs types for stage {cls.STAGE!r}: {OUTPUTS[cls.STAGE]} and {cls}")
        OUTPUTS[cls.STAGE] = cls

    def to_record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> StageOutputs:
        record = cls._upgrade(record)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(record) - set(fields))
        required = [
            n
            for n, f in fields.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [n for n in required if n not in record]
        if unknown or missing:
            raise DataError(
                f"manifest: the {cls.STAGE} stage's outputs do not match this version of ssp "
                f"(unknown fields {unknown}, missing {missing}): run it again (--force {cls.STAGE})"
            )
        return cls(**record)

    @classmethod
    def _upgrade(cls, record: dict[str, Any]) -> dict[str, Any]:
        """A record written by an earlier version, in today's fields (where it can be read at all)."""
        return record


@dataclass(frozen=True)
class DataOutputs(StageOutputs):
    STAGE: ClassVar[str] = "data"
    model: str  # the starting model: the tiny model built here, or model.name_or_path (decided once)
    data_card: str
    sft: str | None = None  # split files (JSONL); None where the data stage wrote no such split
    rl: str | None = None
    eval: str | None = None
    probe: dict[str, str] = field(default_factory=dict)  # domain -> its probe file

    @classmethod
    def from_splits(cls, paths: dict[str, Path], model: str, data_card: Path) -> DataOutputs:
        """The split files the data stage wrote, by name (``probe/<domain>`` nested under ``probe``)."""
        splits: dict[str, Any] = {"probe": {}}
        for name, path in paths.items():
            if name.startswith("probe/"):
                splits["probe"][name.split("/", 1)[1]] = str(path)
            elif name in ("sft", "rl", "eval"):
                splits[name] = str(path)
            else:
                raise ValueError(f"data stage: a split named {name!r} has no place in DataOutputs")
        return cls(model=str(model), data_card=str(data_card), **splits)


@dataclass(frozen=True)
class SFTOutputs(StageOutputs):
    STAGE: ClassVar[str] = "sft"
    model: str  # the last checkpoint
    checkpoints: list[str]  # every complete checkpoint, in step order (the probe reads them)
    log_history: str


@dataclass(frozen=True)
class ProbeOutputs(StageOutputs):
    STAGE: ClassVar[str] = "probe"
    enabled: bool
    specialists: dict[str, str]  # domain -> the checkpoint that scored best on it
    domains: list[str] = field(default_factory=list)
    table: str | None = None
    markdown: str | None = None
    heatmap: str | None = None


@dataclass(frozen=True)
class MergeOutputs(StageOutputs):
    STAGE: ClassVar[str] = "merge"
    model: str  # the spectrum model (the last SFT checkpoint when probing is off)
    merged: bool
    heldout: dict[str, Any] | None = None  # the spectrum model's held-out scores (merge.eval_heldout)

    @classmethod
    def _upgrade(cls, record: dict[str, Any]) -> dict[str, Any]:
        held = record.get("heldout")
        if isinstance(held, dict) and set(held) == {"file", "key"}:  # a file and a label, before: read them
            path = Path(held["file"])
            scores = json.loads(path.read_text()).get(held["key"]) if path.is_file() else None
            return {**record, "heldout": scores}  # None (file gone): RL samples the spectrum again
        return record


@dataclass(frozen=True)
class RLOutputs(StageOutputs):
    STAGE: ClassVar[str] = "rl"
    model: str  # the signal model: the last phase's final model
    phases: list[str]  # each phase's final model, in order


@dataclass(frozen=True)
class EvalOutputs(StageOutputs):
    STAGE: ClassVar[str] = "eval"
    results: str
    markdown: str
    chart: str
    completions: str


def read_outputs(stage: str, record: dict[str, Any]) -> StageOutputs:
    """A stage's outputs as recorded in the manifest, as its type."""
    if stage not in OUTPUTS:
        raise DataError(f"manifest: stage {stage!r} has no outputs type (its module defines none)")
    return OUTPUTS[stage].from_record(record)
