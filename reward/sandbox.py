"""Run one untrusted Python program with limits, and leave nothing behind.

    result = run_python(source, stdin="1 2\\n", limits=Limits(wall_seconds=5))
    result.status  # "ok" | "error" | "timeout" | "output_limit" | "killed" | "sandbox_error"

Isolation layers, each applied where the machine allows it (``isolation()`` says which are
active; docs/security.md lists what each does and does not protect against):

1. **bubblewrap** (``bwrap``, Debian package ``bubblewrap``): read-only view of the host file
   system, a private ``/tmp`` and ``/dev/shm`` discarded afterwards, the work directory as the
   only writable host path, new user/PID/network/IPC/UTS namespaces (no network at all), uid
   65534 inside, killed with its parent.
2. Without bubblewrap: a new network namespace (``unshare``; as root, or through a user
   namespace where the kernel allows it) and, as root, uid/gid 65534.
3. Always: resource limits (CPU seconds, address space, file size, processes, open files), a
   scrubbed environment (no secrets: only PATH, LANG, HOME), ``python -I`` (no user site,
   no PYTHON* variables), a fresh temporary directory, a new session whose whole process
   group is SIGKILLed at the end, a wall-clock timeout and a cap on captured output.
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import cache

NOBODY = 65534
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 10.0  # real time before the process group is killed
    cpu_seconds: int = 10  # RLIMIT_CPU
    memory_mb: int = 1024  # RLIMIT_AS (address space)
    file_size_mb: int = 16  # RLIMIT_FSIZE: largest file the program may write
    processes: int = 64  # RLIMIT_NPROC (per uid; bubblewrap's PID namespace bounds it too)
    open_files: int = 64  # RLIMIT_NOFILE
    output_bytes: int = 1 << 20  # stdout/stderr kept; beyond this the program is stopped


@dataclass
class ExecResult:
    status: str  # ok | error | timeout | output_limit | killed | sandbox_error
    returncode: int | None
    stdout: str
    stderr: str
    wall_seconds: float


@cache
def _bwrap() -> str | None:
    path = shutil.which("bwrap")
    if not path:
        return None
    probe = subprocess.run(
        [path, *_bwrap_args("/"), "--", "/bin/true"],
        capture_output=True,
        timeout=30,
        preexec_fn=_preexec(Limits(), use_bwrap=True),
    )
    return path if probe.returncode == 0 else None


def _bwrap_args(workdir: str) -> list[str]:
    return [
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/dev/shm",
        "--bind",
        workdir,
        workdir,
        "--chdir",
        workdir,
        "--unshare-all",
        "--uid",
        str(NOBODY),
        "--gid",
        str(NOBODY),
        "--die-with-parent",
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/local/bin:/usr/bin:/bin",
        "--setenv",
        "LANG",
        "C.UTF-8",
        "--setenv",
        "HOME",
        workdir,
    ]


def _unshare(flags: int) -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.unshare(flags) == 0


@cache
def _netns_mode() -> int | None:
    """Which unshare flags give a private network namespace here (probed in a child)."""
    for flags in (CLONE_NEWNET, CLONE_NEWUSER | CLONE_NEWNET):
        pid = os.fork()
        if pid == 0:  # child: try, report through the exit code
            os._exit(0 if _unshare(flags) else 1)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) == 0:
            return flags
    return None


@cache
def isolation() -> dict[str, bool]:
    """What isolation is active on this machine."""
    bwrap = _bwrap() is not None
    return {
        "bubblewrap": bwrap,
        "no_network": bwrap or _netns_mode() is not None,
        "read_only_host_fs": bwrap,
        "private_tmp": bwrap,
        "dedicated_uid": os.geteuid() == 0,  # root drops to 65534; others run as themselves
        "resource_limits": True,
        "scrubbed_env": True,
    }


def _preexec(limits: Limits, use_bwrap: bool):
    netns = None if use_bwrap else _netns_mode()

    def setup() -> None:  # runs in the child between fork and exec
        os.setsid()
        for res, value in (
            (resource.RLIMIT_CPU, limits.cpu_seconds),
            (resource.RLIMIT_FSIZE, limits.file_size_mb << 20),
            (resource.RLIMIT_NOFILE, limits.open_files),
            (resource.RLIMIT_CORE, 0),
        ):
            resource.setrlimit(res, (value, value))
        if not use_bwrap:  # bwrap sets up namespaces itself and needs address space to do so
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb << 20,) * 2)
            if netns is not None:
                _unshare(netns)
        # Drop to uid 65534 on the host before exec, bubblewrap included: the kernel does not
        # enforce RLIMIT_NPROC for root, and a user namespace started by root maps its users
        # back to root outside (a fork bomb then exhausted the host's process table).
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))

    return setup


def live_processes(pgid: int | None = None, uid: int | None = None) -> list[int]:
    """Pids of processes that are not zombies, in process group ``pgid`` and/or owned by ``uid``.

    Zombies are left out on purpose: they are dead, hold no memory, CPU or descriptors, and
    wait only for their new parent (the container's init) to reap them."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            owner = os.stat(f"/proc/{entry}").st_uid
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if state != b"Z" and (pgid is None or group == pgid) and (uid is None or owner == uid):
            pids.append(int(entry))
    return pids


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the sandbox's process group and return once no live member is left.

    The group holds bubblewrap, the PID namespace's init and the program with anything it
    forked (no ``--new-session``: preexec's ``setsid`` already detaches from any terminal).
    A process that calls setsid itself leaves the group, but not the PID namespace, which
    the kernel empties when its init dies."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    proc.wait()
    deadline = time.monotonic() + 5
    while live_processes(pgid=proc.pid) and time.monotonic() < deadline:
        time.sleep(0.005)


def run_python(source: str, stdin: str = "", limits: Limits = Limits()) -> ExecResult:
    """Run ``source`` with ``python -I`` on ``stdin`` inside the sandbox."""
    workdir = tempfile.mkdtemp(prefix="ssp-sandbox-")
    try:
        os.chmod(workdir, 0o777)  # writable by uid 65534
        with open(os.path.join(workdir, "main.py"), "w", encoding="utf-8", errors="replace") as f:
            f.write(source)
        use_bwrap = _bwrap() is not None
        python = ["python3", "-I", "-B", "main.py"]
        if use_bwrap:
            # Address-space limit applied inside, by the shell that execs python.
            inner = ["/bin/sh", "-c", f'ulimit -v {limits.memory_mb * 1024} && exec "$@"', "sh", *python]
            cmd = [_bwrap(), *_bwrap_args(workdir), "--", *inner]
            env = {}
        else:
            cmd = [sys.executable, "-I", "-B", "main.py"]
            env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir}
        for _ in range(40):  # up to ~10 s while the processes of a killed fork bomb are reaped
            result = _communicate(cmd, env, workdir, stdin, limits, use_bwrap)
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
        shutil.rmtree(workdir, ignore_errors=True)


def _communicate(cmd, env, workdir, stdin, limits, use_bwrap) -> ExecResult:
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=workdir,
        env=env,
        preexec_fn=_preexec(limits, use_bwrap),
        close_fds=True,
    )
    out, err, status = b"", b"", None
    try:
        import selectors

        sel = selectors.DefaultSelector()
        try:
            proc.stdin.write(stdin.encode("utf-8", errors="replace"))
        except (BrokenPipeError, OSError):
            pass
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        while sel.get_map():
            remaining = limits.wall_seconds - (time.monotonic() - start)
            if remaining <= 0:
                status = "timeout"
                break
            for key, _ in sel.select(timeout=remaining):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                elif key.fileobj is proc.stdout:
                    out += chunk
                else:
                    err += chunk
            if len(out) > limits.output_bytes or len(err) > limits.output_bytes:
                status = "output_limit"
                break
        sel.close()
        if status is None:
            try:
                proc.wait(timeout=max(0.1, limits.wall_seconds - (time.monotonic() - start)))
            except subprocess.TimeoutExpired:
                status = "timeout"
    finally:
        _kill_group(proc)  # the whole group: children the program forked die too
        for stream in (proc.stdout, proc.stderr):
            stream.close()
        proc.wait()
    code = proc.returncode
    if status is None:
        status = "ok" if code == 0 else ("killed" if code < 0 else "error")
    return ExecResult(
        status,
        code,
        out[: limits.output_bytes].decode("utf-8", errors="replace"),
        err[: limits.output_bytes].decode("utf-8", errors="replace"),
        round(time.monotonic() - start, 4),
    )
