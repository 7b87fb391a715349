"""Write a file atomically: to a temporary name in the same folder, then rename over the target.

A reader (or a resumed stage) sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import re
import shutil
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


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale(folder: Path, pattern: str) -> list[Path]:
    """Remove what a killed writer left in ``folder``: entries matching ``pattern`` whose name ends
    in ``-<pid>`` of a process that is no longer alive (``kill -9`` runs no cleanup). Returns them."""
    removed = []
    for path in Path(folder).glob(pattern):
        m = re.search(r"-(\d+)$", path.name)
        if m and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path)
    return removed
