"""``runs/<name>/manifest.json``: what each stage did, so that a re-run can skip it.

Per stage: status (running | completed | failed), config hash, fingerprint (config hash plus
the fingerprints of the stages it reads and the identity of any external file), inputs,
outputs, metrics, start/end (UTC, ISO 8601) and wall time. Written atomically.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Manifest:
    """The manifest as read once; a caller takes its decisions on this snapshot. ``update`` and
    ``reset`` re-read the file before writing, so a write never undoes another stage's entry
    written since (``ssp stage eval`` beside a running ``rl``: each holds only its stage's lock)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "manifest.json"
        self.data: dict[str, Any] = self._read()

    def _read(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.is_file() else {"stages": {}}

    def stage(self, name: str) -> dict[str, Any] | None:
        return self.data["stages"].get(name)

    def completed(self, name: str) -> bool:
        entry = self.stage(name)
        return bool(entry) and entry.get("status") == "completed"

    def update(self, name: str, **fields: Any) -> None:
        self.data = self._read()
        self.data["stages"].setdefault(name, {}).update(fields)
        self.save()

    def reset(self, name: str) -> None:
        self.data = self._read()
        self.data["stages"].pop(name, None)
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".manifest.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=False))
        tmp.replace(self.path)
