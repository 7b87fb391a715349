"""What a string in a recipe refers to: a path on this machine, or a hub id (``owner/name``)."""

from __future__ import annotations

import re
from pathlib import Path

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def looks_local(ref: str) -> bool:
    """Is ``ref`` meant as a path on this machine (rather than a hub id)?"""
    return bool(ref) and (
        Path(ref).exists()
        or Path(ref).suffix in (".jsonl", ".json", ".parquet", ".yaml")
        or ref.startswith((".", "/", "~"))
        or ref.count("/") > 1
    )
