"""Run one untrusted Python program with limits, in a view of nothing but itself, and leave nothing.

    result = run_python(source, stdin="1 2\\n", limits=Limits(wall_seconds=5))
    result.status  # "ok" | "error" | "timeout" | "output_limit" | "killed" | "sandbox_error"

The threat (docs/security.md): a model-written program that tries to *read* the answer instead of
computing it (a benchmark's test file, the caller's keys), to *reach* something (the network, a
socket of another process, the trainer's environment), to *write* somewhere (other samples'
programs, the host's /tmp, /dev/shm, the project) or to *stay* (a daemon that outlives its call).

Strict mode (the default) runs every program under bubblewrap (``bwrap``, Debian package
``bubblewrap``), as root or as an ordinary user:

- **file system**: an empty root holding only the read-only system folders the interpreter
  needs (``/usr`` and the ``/bin``, ``/lib*`` links to it, the dynamic linker's cache, or the
  interpreter's own installation when ``/usr`` has no ``python3``), fresh ``/proc`` and ``/dev``,
  private ``/tmp`` and ``/dev/shm``, and the program's own folder at ``/sandbox``. No home, no
  project, no data, no host ``/tmp``, no socket of another process;
- **user**: uid 65534 inside. Root callers start bubblewrap as a host uid of its own for each
  running program (``UID_BASE`` + a free slot, held by a lock file for the length of the call, as
  IOI's ``isolate`` gives each box its uid): the kernel counts RLIMIT_NPROC per uid, so with one
  shared uid a fork bomb in one completion kept every program graded beside it from starting (a
  correct ``print(1)`` took 2.1 s instead of 0.1 s, a 3 s timeout 5.1 s). Other callers cannot
  change uid, so inside a user namespace 65534 maps back to the caller, whose files are then out
  of reach because none are in the view (their programs still share the caller's process count);
- **processes**: a new PID namespace whose init dies with bubblewrap (``--die-with-parent``); when
  the call returns the namespace is gone, and everything the program forked, ``setsid`` and double
  forks included, with it;
- **network, IPC, hostname**: new namespaces (no interface but a down loopback);
- always: resource limits (CPU seconds, address space, file size, processes, open files), a
  scrubbed environment, ``python -I -B``, a wall-clock timeout and a cap on captured output.

Each program gets a fresh folder (mode 0700, owned by the uid that runs it) removed afterwards.
Without a working bubblewrap, ``run_python`` refuses (``SandboxUnavailable``) unless the caller
opts in with ``unsafe=True`` (the ``code_tests`` option ``sandbox: unsafe``): then the program
runs on the host file system as its own slot uid (root callers) or as the caller, in a network namespace
where the kernel allows one, with the limits above; a process that calls ``setsid`` can outlive
the call. ``isolation()`` says which layers are active.

This module decides what runs; ``reward/spawner.py`` starts it, from a small process of its own
rather than the caller (whose fork would copy a trainer's or engine's page tables for every test).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from ssp.reward.spawner import ExecResult, Limits, kill_uid, live_processes, netns_mode, preexec, spawn

__all__ = ["ExecResult", "Limits", "SandboxUnavailable", "isolation", "require_isolation", "run_python"]

NOBODY = 65534
# Root callers run each program as its own host uid: UID_BASE + a slot no other running program
# holds (a lock file per slot under UID_LOCKS, shared by every process on the machine). The range is
# isolate's default; no account should own these uids.
UID_BASE, UID_SLOTS = 60000, 1000
UID_LOCKS = "/tmp/ssp-sandbox-uids"
INSIDE = "/sandbox"  # where the program's folder appears in the sandbox
# Read-only system paths of the view: what a Python interpreter and its C extensions load.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache")
PATH = "/usr/local/bin:/usr/bin:/bin"

log = logging.getLogger("ssp")


class SandboxUnavailable(RuntimeError):
    """Strict isolation is not available here and the caller did not opt out of it."""


@cache
def interpreter() -> tuple[str, tuple[str, ...]]:
    """(the python3 programs run with, extra host folders the view needs for it). The system's
    python3 under /usr when there is one (nothing more to show); otherwise this process's base
    interpreter, whose installation folder is shown read-only (never a venv: its site-packages
    hold the project's dependencies, not the standard library's)."""
    for candidate in ("/usr/local/bin/python3", "/usr/bin/python3"):
        real = os.path.realpath(candidate)
        if os.access(real, os.X_OK) and real.startswith("/usr/"):
            return candidate, ()
    base = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    return base, (os.path.realpath(sys.base_prefix),)


def _bwrap_args(workdir: str) -> list[str]:
    """bubblewrap's arguments: the view described in the module docstring."""
    args: list[str] = []
    for path in SYSTEM_PATHS:
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            args += ["--symlink", os.readlink(path), path]
        elif os.path.exists(path):
            args += ["--ro-bind", path, path]
    for path in interpreter()[1]:
        args += ["--ro-bind", path, path]
    return [
        *args,
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/dev/shm",
        "--bind",
        workdir,
        INSIDE,
        "--chdir",
        INSIDE,
        "--remount-ro",  # the view's own root: nothing but /sandbox, /tmp and /dev/shm is writable
        "/",
        "--unshare-all",
        "--uid",
        str(NOBODY),
        "--gid",
        str(NOBODY),
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--clearenv",
        "--setenv",
        "PATH",
        PATH,
        "--setenv",
        "LANG",
        "C.UTF-8",
        "--setenv",
        "HOME",
        INSIDE,
    ]


@cache
def _bwrap() -> str | None:
    """The bubblewrap binary, if it can start a sandbox here (as this user)."""
    path = shutil.which("bwrap")
    if not path:
        return None
    folder = _workdir()
    try:
        probe = subprocess.run(
            [path, *_bwrap_args(folder), "--", interpreter()[0], "-I", "-c", "pass"],
            capture_output=True,
            timeout=60,
            cwd="/",
            preexec_fn=preexec(Limits(), use_bwrap=True, uid=NOBODY),
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return path if probe.returncode == 0 else None


@cache
def isolation() -> dict[str, bool]:
    """Which isolation layers programs get on this machine in strict mode (with bubblewrap), or, when
    bubblewrap is missing, in unsafe mode."""
    bwrap = _bwrap() is not None
    root = os.geteuid() == 0
    return {
        "bubblewrap": bwrap,
        "private_filesystem": bwrap,  # only the program, its input and the interpreter are visible
        "private_pids": bwrap,  # nothing the program starts outlives the call
        "no_network": bwrap or netns_mode() is not None,
        "uid_65534": bwrap or root,  # on the host (root callers) or inside a user namespace
        "resource_limits": True,
        "scrubbed_env": True,
    }


def require_isolation(unsafe: bool) -> dict[str, bool]:
    """The active layers; SandboxUnavailable unless bubblewrap works here or ``unsafe`` is set."""
    layers = isolation()
    if not layers["bubblewrap"] and not unsafe:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is missing or cannot start a sandbox here, so model-written programs "
            "would run on the host file system: refusing. Install it (apt-get install bubblewrap; as a "
            "non-root user the kernel must allow unprivileged user namespaces), or accept the weaker "
            "isolation explicitly with the code_tests option `sandbox: unsafe` (docs/security.md)"
        )
    return layers


def _workdir(uid: int = NOBODY) -> str:
    """A fresh folder for one program: mode 0700, owned by the uid the program runs as."""
    folder = tempfile.mkdtemp(prefix="ssp-sandbox-")
    if os.geteuid() == 0:
        os.chown(folder, uid, uid)
    return folder


def _slot_folder() -> str:
    """UID_LOCKS, made if missing; refused unless only root can write it (a slot lock another user
    could hold or plant would let it choose which uid programs share)."""
    try:
        os.mkdir(UID_LOCKS, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(UID_LOCKS)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
        raise SandboxUnavailable(f"{UID_LOCKS}: must be a folder owned by root that no one else may write")
    return UID_LOCKS


def _clear_uid(uid: int, sweep: bool) -> None:
    """End every process of ``uid`` before its slot goes to the next program. Under bubblewrap the
    PID namespace is already gone (only its reaping is waited for); without it (``sweep``: unsafe
    mode) a program may have left a ``setsid`` daemon, perhaps hidden from /proc's owner field
    (PR_SET_DUMPABLE 0), so every process of the uid is sent SIGKILL (``spawner.kill_uid``)
    until none is seen."""
    deadline = time.monotonic() + 5
    while sweep or live_processes(uid=uid):
        if time.monotonic() > deadline:
            log.warning(
                "sandbox: processes of uid %d outlived 5 s of SIGKILL: %s", uid, live_processes(uid=uid)
            )
            return
        if sweep:
            kill_uid(uid)
            sweep = False
        time.sleep(0.005)


@contextmanager
def _host_uid(sweep: bool = False) -> Iterator[int]:
    """The host uid one program runs as (see the module docstring): for root callers a slot no
    other running program holds, kept until no process of that uid is left (``_clear_uid``), so
    the next program never shares a process count or files with leftovers; for other callers
    their own uid (unchanged)."""
    if os.geteuid() != 0:
        yield os.geteuid()
        return
    folder = _slot_folder()
    first = (os.getpid() * 7919 + threading.get_ident()) % UID_SLOTS
    while True:
        for slot in ((first + i) % UID_SLOTS for i in range(UID_SLOTS)):
            fd = os.open(os.path.join(folder, str(slot)), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            uid = UID_BASE + slot
            try:
                yield uid
            finally:
                try:
                    _clear_uid(uid, sweep)
                finally:
                    os.close(fd)  # releases the slot, even when the sweep failed (and raised)
            return
        time.sleep(0.05)  # every slot is taken: wait for one


def _remove(folder: str) -> None:
    """Remove a program's folder, whatever it did to the modes inside: a folder of mode 000 cannot
    be listed, even by its owner, until its mode is restored (root callers are not stopped by it)."""

    def unlock(path: str) -> None:
        try:
            os.chmod(path, 0o700, follow_symlinks=False)
            with os.scandir(path) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        unlock(entry.path)
        except OSError:
            pass

    shutil.rmtree(folder, ignore_errors=True)
    if os.path.lexists(folder):
        unlock(folder)
        shutil.rmtree(folder, ignore_errors=True)


def run_python(source: str, stdin: str = "", limits: Limits = Limits(), unsafe: bool = False) -> ExecResult:
    """Run ``source`` with ``python -I -B`` on ``stdin`` in the sandbox (see the module docstring)."""
    use_bwrap = _bwrap() is not None
    if not use_bwrap and not unsafe:
        require_isolation(unsafe)
    with _host_uid(sweep=not use_bwrap) as uid:
        return _run_as(uid, source, stdin, limits, use_bwrap)


def _run_as(uid: int, source: str, stdin: str, limits: Limits, use_bwrap: bool) -> ExecResult:
    workdir = _workdir(uid)
    try:
        main = os.path.join(workdir, "main.py")
        with open(main, "w", encoding="utf-8", errors="replace") as f:
            f.write(source)
        if os.geteuid() == 0:
            os.chown(main, uid, uid)
        python = [interpreter()[0], "-I", "-B", "main.py"]
        if use_bwrap:
            # Address-space limit applied inside, by the shell that execs python.
            inner = ["/bin/sh", "-c", f'ulimit -v {limits.memory_mb * 1024} && exec "$@"', "sh", *python]
            cmd, env, cwd = [_bwrap(), *_bwrap_args(workdir), "--", *inner], {}, "/"
        else:
            cmd, cwd = python, workdir
            env = {"PATH": PATH, "LANG": "C.UTF-8", "HOME": workdir}
        for _ in range(40):  # up to ~10 s while the processes of a killed fork bomb are reaped
            result = spawn(cmd, env, cwd, stdin, limits, use_bwrap, uid)
            if not (
                use_bwrap
                and result.returncode == 1
                and result.stderr.startswith("bwrap:")
                and "Resource temporarily unavailable" in result.stderr
            ):
                return result
            time.sleep(0.25)  # the sandbox itself could not start: not the program's fault
        result.status = "sandbox_error"
        return result
    finally:
        _remove(workdir)
