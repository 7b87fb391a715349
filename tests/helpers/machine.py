"""What this machine can provide, for tests that need it (and skip, saying why, where it cannot)."""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache

import pytest

NOBODY = 65534


@cache
def can_bwrap() -> bool:
    """Can this machine run bubblewrap at all: the binary, and the namespaces it needs for this user
    (root callers start it as uid 65534, as the sandbox does)? Tests that need strict isolation skip
    only when this fails: a sandbox of ours that fails where a bare bubblewrap works is a failure."""
    path = shutil.which("bwrap")
    if not path:
        return False

    def drop() -> None:
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)

    bare = subprocess.run(
        [path, "--ro-bind", "/", "/", "--unshare-all", "--", "/bin/true"],
        capture_output=True,
        preexec_fn=drop,
    )
    return bare.returncode == 0


needs_bwrap = pytest.mark.skipif(
    not can_bwrap(), reason="this machine cannot run bubblewrap (bwrap): code_tests refuses to run programs"
)
