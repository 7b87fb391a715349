"""Read the records of an offline W&B run file (``run-<id>.wandb``) without a network.

The file is W&B's LevelDB-style log: a 7-byte header (":W&B", magic, version), then 32 KiB
blocks of chunks, each with a 7-byte header (crc32, length, type: full/first/middle/last),
holding ``wandb_internal_pb2.Record`` protobufs. wandb 0.31 has no Python reader for it any
more (its core is in Go), so the tests read it with this one.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK, HEADER = 32768, 7


def records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    out, buf, off = [], b"", HEADER
    while off + HEADER <= len(data):
        if BLOCK - off % BLOCK < HEADER:  # the rest of a block too short for a header is padding
            off += BLOCK - off % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[off : off + HEADER])
        off += HEADER
        if kind == 0 and length == 0:
            break
        chunk, off = data[off : off + length], off + length
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            out.append(record)
    return out


def history(path: Path) -> list[dict]:
    """Every logged row as {key: value}."""
    rows = []
    for r in records(path):
        if r.WhichOneof("record_type") == "history":
            rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item})
    return rows


def run_info(path: Path) -> dict:
    """Id, group, name and config of the run record."""
    for r in records(path):
        if r.WhichOneof("record_type") == "run":
            config = {u.key: json.loads(u.value_json) for u in r.run.config.update}
            return {
                "id": r.run.run_id,
                "group": r.run.run_group,
                "name": r.run.display_name,
                "config": config,
            }
    raise AssertionError(f"{path}: no run record")
