"""Write a file atomically: to a temporary name in the same folder, then rename over the target.

A reader (or a resumed stage) sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, content: str | Callable[[Path], None]) -> None:
    """``content``: the text, or a function that writes the file at the path it is given."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if callable(content):
        content(tmp)
    else:
        tmp.write_text(content)
    tmp.replace(path)
