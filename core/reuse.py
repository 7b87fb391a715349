"""One rule for every reuse: a result made earlier is served again only when it was made from
exactly what it would be made from now.

Every cache in ssp (a stage shared from another run, a teacher's sample shard, an eval unit, an arm
of a comparison) records beside its result a *made-from* record: a flat-ish dict of everything the
result depends on (inputs' content hashes, settings, upstream output ids, versions that change the
numbers). Reuse compares the recorded dict with the current one, key by key:

    stamp = Stamp.of({"model": model_id(path), "benchmark": spec_hash, "n": 8})
    old = Stamp.read(unit_file)            # None if missing or written before stamps existed
    if stamp.matches(old, what=f"eval unit {unit}"):   # logs what differs when it does not
        return json.loads(unit_file.read_text())["result"]

A result without a record (older ssp, a hand-written file) is never reused: it is recomputed. A
record is compared whole, never by a name or an id alone. docs/architecture.md, "Reuse", states
the rule; each cache says in its docstring what goes into its record.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("ssp")


def digest(value: Any) -> str:
    """A short stable hash of any JSON-able value (dict keys sorted; other objects by ``str``)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """The hash of a file's bytes (content, not size and mtime: a corrected source of the same size
    written in the same second is another source)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]


def rows_digest(rows: Iterable[Mapping[str, Any]], fields: Iterable[str] | None = None) -> str:
    """The hash of rows' content (all fields, or ``fields`` only), in order."""
    keep = list(fields) if fields is not None else None
    h = hashlib.sha256()
    for row in rows:
        part = row if keep is None else {k: row.get(k) for k in keep}
        h.update(json.dumps(part, sort_keys=True, default=str).encode() + b"\n")
    return h.hexdigest()[:16]


def differences(recorded: Mapping[str, Any], current: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The keys (dotted paths) whose values differ between two made-from records, sorted."""
    out: list[str] = []
    for key in sorted(set(recorded) | set(current), key=str):
        path = f"{prefix}{key}"
        a, b = recorded.get(key, _MISSING), current.get(key, _MISSING)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += differences(a, b, prefix=f"{path}.")
        elif _canonical(a) != _canonical(b):
            out.append(path)
    return out


_MISSING = object()


def _canonical(value: Any) -> str:
    if value is _MISSING:
        return "<missing>"
    return json.dumps(value, sort_keys=True, default=str)


@dataclass(frozen=True)
class Stamp:
    """A made-from record and its id. ``made_from`` must be JSON-able."""

    made_from: dict[str, Any]

    @classmethod
    def of(cls, made_from: Mapping[str, Any]) -> Stamp:
        return cls(json.loads(json.dumps(dict(made_from), sort_keys=True, default=str)))

    @property
    def id(self) -> str:
        return digest(self.made_from)

    def as_dict(self) -> dict[str, Any]:
        return {"made_from": self.made_from, "made_from_id": self.id}

    @classmethod
    def from_dict(cls, data: Any) -> Stamp | None:
        """The stamp recorded in ``data`` (a dict holding ``made_from``), None if there is none."""
        if isinstance(data, Mapping) and isinstance(data.get("made_from"), Mapping):
            return cls(dict(data["made_from"]))
        return None

    @classmethod
    def read(cls, path: str | Path) -> Stamp | None:
        """The stamp recorded in a JSON file, None if the file is missing, unreadable or unstamped."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError):
            return None

    def why_not(self, recorded: Stamp | None) -> str | None:
        """None when ``recorded`` is this stamp; otherwise what differs, in words."""
        if recorded is None:
            return "no record of what it was made from"
        diff = differences(recorded.made_from, self.made_from)
        return f"made from another {', '.join(diff)}" if diff else None

    def matches(self, recorded: Stamp | None, what: str) -> bool:
        """True when ``recorded`` equals this stamp; otherwise logs ``what`` and what differs."""
        reason = self.why_not(recorded)
        if reason is not None:
            log.info("%s: not reused (%s); made again", what, reason)
        return reason is None
