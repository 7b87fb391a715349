"""Read an offline W&B run file (``run-<id>.wandb``) here, without a network or an account.

The file is W&B's LevelDB-style log: a 7-byte header (":W&B", magic, version), then 32 KiB blocks
of chunks, each with a 7-byte header (crc32, length, type: full/first/middle/last), holding
``wandb_internal_pb2.Record`` protobufs. wandb 0.31 has no Python reader for it any more (its core
is in Go; ``wandb sync`` only uploads), so ssp reads it with this one: ~40 lines, the format's
published layout, parsed with wandb's own protobuf classes. Checksums are not verified.

A run still being written (or killed) ends in a partial chunk, or cleanly between two records but
before W&B's closing ``exit`` record: the records before the cut are returned,
``WandbFile.truncated_at`` says where a partial chunk starts, and ``finished`` is False.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssp.core.errors import DataError

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@dataclass
class WandbFile:
    path: Path
    records: list = field(default_factory=list)
    truncated_at: int | None = None  # byte offset of an unreadable tail, if any

    @property
    def finished(self) -> bool:
        """Whole, up to the exit record ``run.finish()`` writes."""
        return self.truncated_at is None and any(r.WhichOneof("record_type") == "exit" for r in self.records)

    def run_info(self) -> dict[str, Any]:
        """Id, group, name, job type and config of the run record."""
        for r in self.records:
            if r.WhichOneof("record_type") == "run":
                return {
                    "id": r.run.run_id,
                    "group": r.run.run_group,
                    "name": r.run.display_name,
                    "job_type": r.run.job_type,
                    "config": {u.key: json.loads(u.value_json) for u in r.run.config.update},
                }
        raise DataError(f"{self.path}: no run record (not a finished wandb.init?)")

    def history(self) -> list[dict[str, Any]]:
        """Every logged row as {key: value} (nested keys joined with /)."""
        return [
            {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
            for r in self.records
            if r.WhichOneof("record_type") == "history"
        ]


def read(path: Path) -> WandbFile:
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2 as pb

    path = Path(path)
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise DataError(f"{path}: not a W&B run file (it does not start with ':W&B')")
    out = WandbFile(path)
    buf, off, start, pending = b"", HEADER, HEADER, False
    while off + HEADER <= len(data):
        if BLOCK - off % BLOCK < HEADER:  # the rest of a block too short for a header is padding
            off += BLOCK - off % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[off : off + HEADER])
        if kind == 0 and length == 0:  # zero padding: the end of what was written
            break
        if kind not in (FULL, FIRST, MIDDLE, LAST) or off + HEADER + length > len(data):
            out.truncated_at = off
            return out
        if kind in (FULL, FIRST):
            start = off
        chunk = data[off + HEADER : off + HEADER + length]
        off += HEADER + length
        buf = chunk if kind in (FULL, FIRST) else buf + chunk
        pending = kind in (FIRST, MIDDLE)  # a record begun and not finished
        if kind in (FULL, LAST):
            record = pb.Record()
            try:
                record.ParseFromString(buf)
            except DecodeError:
                out.truncated_at = start
                return out
            out.records.append(record)
    if pending or data[off:].strip(b"\x00"):  # a record cut short, or bytes that are not padding
        out.truncated_at = start if pending else off
    return out
