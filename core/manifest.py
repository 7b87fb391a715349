"""``runs/<name>/manifest.json``: what each stage did, so that a re-run can skip it.

Per stage: status (running | completed | failed), config hash, fingerprint (config hash plus
the fingerprints of the stages it reads and the identity of any external file), inputs,
outputs, metrics, start/end (UTC, ISO 8601) and wall time. Written atomically.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ssp.core.locks import file_lock
from ssp.core.outputs import StageOutputs, read_outputs


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Manifest:
    """The manifest as read once; a caller takes its decisions on this snapshot. ``update`` and
    ``reset`` re-read the file and write it back under ``.manifest.lock`` (a file lock: writers in
    other processes wait), so a write never undoes another stage's entry written since (``ssp stage
    eval`` beside a running ``rl``: each holds only its stage's lock). Unlocked, two such writers lost
    a "completed" in 2 of 5 stress runs."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "manifest.json"
        self.data: dict[str, Any] = self._read()

    def _read(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.is_file() else {"stages": {}}

    def stage(self, name: str) -> dict[str, Any] | None:
        return self.data["stages"].get(name)

    def outputs(self, name: str) -> StageOutputs:
        """What stage ``name`` handed on, as its type (core/outputs.py); the stage must have an entry."""
        entry = self.stage(name)
        if entry is None:
            raise KeyError(f"manifest {self.path}: no entry for stage {name!r}")
        return read_outputs(name, entry["outputs"])

    def completed(self, name: str) -> bool:
        entry = self.stage(name)
        return bool(entry) and entry.get("status") == "completed"

    def update(self, name: str, **fields: Any) -> None:
        with self._locked():
            self.data = self._read()
            self.data["stages"].setdefault(name, {}).update(fields)
            self._write()

    def reset(self, name: str) -> None:
        with self._locked():
            self.data = self._read()
            self.data["stages"].pop(name, None)
            self._write()

    def save(self) -> None:
        """Write this snapshot as it is (it replaces whatever was written since it was read)."""
        with self._locked():
            self._write()

    def _locked(self):
        return file_lock(self.path.with_name(".manifest.lock"))

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".manifest.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=False))
        tmp.replace(self.path)
