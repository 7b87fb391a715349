"""File locks (``flock``) that leave no file behind.

    with file_lock(run_dir / ".manifest.lock"):           # waits for the holder
        ...
    with file_lock(path, wait=False, holder=os.getpid()):  # raises LockHeld at once if taken
        ...

The kernel drops a lock when its holder dies (``kill -9`` included), so a lock is never stale. A
holder removes the file when it ends, while still holding it; whoever opened the file before that
finds, once it gets the lock, that the path now names another file (or none) and locks again.
Without the removal, lock files piled up (``.share/*.lock``: one per stage and fingerprint).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class LockHeld(Exception):
    """The lock is held by another process; ``holder`` is what it wrote into the file ("?" if none)."""

    def __init__(self, path: Path, holder: str):
        super().__init__(f"{path} is held by {holder}")
        self.path, self.holder = path, holder


@contextlib.contextmanager
def file_lock(path: str | Path, wait: bool = True, holder: object = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created, and removed at the end). ``wait=False``: raise
    ``LockHeld`` instead of waiting. ``holder``: written into the file for whoever finds it held."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        f = path.open("a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            f.seek(0)
            who = f.read().strip() or "?"
            f.close()
            raise LockHeld(path, who) from None
        try:  # the holder before us may have removed the file after we opened it: lock the new one
            if os.stat(path).st_ino == os.fstat(f.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        f.close()
    try:
        if holder is not None:
            f.seek(0)
            f.truncate()
            f.write(str(holder))
            f.flush()
        yield
    finally:
        path.unlink(missing_ok=True)  # removed while still held: see the module docstring
        f.close()
