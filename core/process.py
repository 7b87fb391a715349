"""Child processes that never outlive the process that started them.

``kill -9`` runs no cleanup, so a stage's helpers must be tied to their parent by the kernel:
``die_with_parent`` asks Linux (``PR_SET_PDEATHSIG``) to signal a process when its parent exits.
The runner starts torchrun through ``python -m ssp.core.process -- CMD ...``, which sets SIGTERM as
torchrun's death signal and then execs it (the setting survives ``exec``): when ``ssp`` dies,
torchrun gets SIGTERM and stops its workers as it does on Ctrl-C. The workers themselves (torchrun
starts each in a session of its own, out of reach of a process-group kill) set SIGKILL as theirs
in ``launch/worker.py``, for when torchrun is killed too. Reward workers do the same
(``reward/pool.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent exits (Linux; elsewhere a no-op)."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), sig)


def tied_command(cmd: list[str], sig: int = signal.SIGTERM) -> list[str]:
    """``cmd`` wrapped so that it gets ``sig`` when the calling process dies."""
    return [sys.executable, "-m", "ssp.core.process", str(int(sig)), "--", *cmd]


if __name__ == "__main__":  # python -m ssp.core.process SIG -- CMD ...
    die_with_parent(int(sys.argv[1]))
    command = sys.argv[sys.argv.index("--") + 1 :]
    os.execvp(command[0], command)
