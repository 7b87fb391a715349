"""Start one limited process and collect its output, from a small spawner process of our own.

    result = spawn(cmd, env, cwd, stdin, limits, use_bwrap, uid)   # -> ExecResult

``sandbox.run_python`` decides *what* runs (bubblewrap's view, the program's folder, its uid);
this module *starts* it: a new session, resource limits and the uid set between fork and exec,
stdin written, stdout/stderr read up to a cap, a wall-clock timeout, and the whole process group
killed at the end.

Why a spawner process. Setting limits and a uid in the child needs ``subprocess.Popen``'s
``preexec_fn``, and with one CPython must ``fork()`` the caller instead of ``vfork()``: the kernel
copies the page tables of the whole calling process for every test of every program. A trainer
or sampling engine maps gigabytes: measured on 2 cores, 40 passing tiny-task programs took 3.7 s
from a bare process and 11.2 s from one holding a CPU vLLM engine (idle), 9.0 s after closing it
(torch still loaded) (docs/benchmarks.md). So the first program a process runs starts a spawner: a
fresh interpreter (``python -I`` on this file, standard library only, ~15 MB) started by
``Popen`` without ``preexec_fn`` (vfork), which takes requests as JSON lines on its stdin, starts
each program with the same code (one thread per program in flight) and answers on its stdout. It
dies when its caller does (end of stdin, or its parent pid changing). A forked child of the
caller starts its own. ``spawn(..., here=True)`` starts the program from the calling process
instead (what the spawner itself does).

Where this departs from the usual: verl and open-r1 run code in a sandbox *service* over HTTP
(SandboxFusion, E2B, Piston); this is the same idea on one machine, with nothing to deploy.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from functools import cache

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 10.0  # real time before the sandbox is killed
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


class SpawnerError(RuntimeError):
    """The spawner process died or answered nonsense: the program's fate is unknown."""


def _unshare(flags: int) -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.unshare(flags) == 0


@cache
def netns_mode() -> int | None:
    """Which unshare flags give a private network namespace here (probed in a child)."""
    for flags in (CLONE_NEWNET, CLONE_NEWUSER | CLONE_NEWNET):
        pid = os.fork()
        if pid == 0:  # child: try, report through the exit code
            os._exit(0 if _unshare(flags) else 1)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) == 0:
            return flags
    return None


def preexec(limits: Limits, use_bwrap: bool, uid: int):
    """What the child does between fork and exec: its own session, the limits, the uid."""
    netns = None if use_bwrap else netns_mode()

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
        # Drop to the program's own uid on the host before exec, bubblewrap included: the kernel
        # does not enforce RLIMIT_NPROC for root, and a user namespace started by root maps its
        # users back to root outside (a fork bomb then exhausted the host's process table).
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
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
            if uid is not None and os.stat(f"/proc/{entry}").st_uid != uid:
                continue  # the cheap test first: this runs after every program
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if state != b"Z" and (pgid is None or group == pgid):
            pids.append(int(entry))
    return pids


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the sandbox's process group and return once no live member is left.

    The group holds bubblewrap, the PID namespace's init and the program with anything it
    forked. A process that calls setsid itself leaves the group, but not the PID namespace,
    which the kernel empties when its init dies (with bubblewrap, by --die-with-parent)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    proc.wait()
    deadline = time.monotonic() + 5
    while live_processes(pgid=proc.pid) and time.monotonic() < deadline:
        time.sleep(0.005)


def spawn_here(cmd, env, cwd, stdin: str, limits: Limits, use_bwrap: bool, uid: int) -> ExecResult:
    """Start ``cmd`` from this process (a fork of it) and collect its result."""
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        preexec_fn=preexec(limits, use_bwrap, uid),
        close_fds=True,
    )
    out, err, status = b"", b"", None
    pending = memoryview(stdin.encode("utf-8", errors="replace"))
    try:
        # stdin is fed through the same loop that reads the output, under the wall limit: written
        # whole first, a program that echoes an input larger than the pipe (64 KiB) would block on
        # its full stdout while this thread blocked on its full stdin, neither using CPU, forever
        sel = selectors.DefaultSelector()
        os.set_blocking(proc.stdin.fileno(), False)
        sel.register(proc.stdin, selectors.EVENT_WRITE)
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        while sel.get_map():
            remaining = limits.wall_seconds - (time.monotonic() - start)
            if remaining <= 0:
                status = "timeout"
                break
            for key, _ in sel.select(timeout=remaining):
                if key.fileobj is proc.stdin:
                    try:
                        pending = pending[os.write(key.fd, pending[:65536]) :]
                    except BlockingIOError:
                        continue
                    except OSError:  # the program closed its stdin or ended: the rest is not read
                        pending = pending[:0]
                    if not pending:
                        sel.unregister(proc.stdin)
                        proc.stdin.close()
                    continue
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
        for stream in (proc.stdin, proc.stdout, proc.stderr):
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


class _Client:
    """This process's end of one spawner: requests written under a lock, answers read by a thread
    and handed to the waiting caller by request id."""

    def __init__(self):
        self.owner = os.getpid()
        self.proc = subprocess.Popen(  # no preexec_fn: vfork, whatever this process maps
            [sys.executable, "-I", os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        self.ids = itertools.count()
        self.lock = threading.Lock()
        self.waiting: dict[int, Future] = {}
        self.dead: str | None = None
        self.reader = threading.Thread(target=self._read, name="ssp-spawner-reader", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        with self.proc.stdout:  # closed here, not whenever the client is collected
            for line in self.proc.stdout:
                try:
                    answer = json.loads(line)
                    future = self.waiting.pop(answer["id"])
                except (ValueError, KeyError) as err:
                    self.proc.kill()
                    why = f"an answer it could not read ({err!r}: {line[:200]!r})"
                    break
                if "error" in answer:
                    future.set_exception(SpawnerError(f"sandbox spawner: {answer['error']}"))
                else:
                    future.set_result(answer["result"])
            else:
                why = f"it exited with code {self.proc.wait()}"
        self._fail(why)

    def _fail(self, why: str) -> None:
        with self.lock:
            self.dead = f"sandbox spawner (pid {self.proc.pid}) failed: {why}"
            waiting, self.waiting = self.waiting, {}
        for future in waiting.values():
            future.set_exception(SpawnerError(self.dead))
        self.proc.kill()
        self.proc.wait()

    def call(self, request: dict, timeout: float):
        future: Future = Future()
        with self.lock:
            if self.dead:
                raise SpawnerError(self.dead)
            request["id"] = next(self.ids)
            self.waiting[request["id"]] = future
            try:
                self.proc.stdin.write(json.dumps(request).encode() + b"\n")
                self.proc.stdin.flush()
            except OSError as err:
                self.waiting.pop(request["id"], None)
                self.dead = f"sandbox spawner (pid {self.proc.pid}): cannot send: {err}"
                raise SpawnerError(self.dead) from None
        try:  # the spawner enforces the wall limit; this is the backstop should it not answer
            return future.result(timeout=timeout)
        except TimeoutError:
            self._fail(f"no answer {timeout:.0f} s after the request")
            raise SpawnerError(self.dead) from None

    def close(self) -> None:
        """End the spawner (the end of its stdin) and wait for its reader to close its pipe."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
        if threading.current_thread() is not self.reader:
            self.reader.join(timeout=5)


_client: _Client | None = None
_client_lock = threading.Lock()


def _current() -> _Client:
    """This process's spawner, started on first use; a new one after a fork or a failure."""
    global _client
    with _client_lock:
        if _client is None or _client.owner != os.getpid() or _client.dead:
            if _client is not None and _client.owner == os.getpid():
                _client.close()
            _client = _Client()
        return _client


def started() -> int:
    """The pid of this process's spawner, started now if it was not."""
    return _current().proc.pid


def kill_uid_here(uid: int) -> None:
    """SIGKILL every process ``uid`` runs: a child takes the uid and signals all it may
    (``kill(-1)``, which spares the sender), as IOI's isolate does. Root callers only."""
    pid = os.fork()
    if pid == 0:  # the child: the uid, then everything that uid runs
        try:
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        os._exit(0)
    os.waitpid(pid, 0)


def kill_uid(uid: int, here: bool = False) -> None:
    """``kill_uid_here``, done by this process's spawner (a fork of a small process)."""
    if here:
        return kill_uid_here(uid)
    _current().call({"op": "kill_uid", "uid": uid}, timeout=60)


def spawn(
    cmd, env, cwd, stdin: str, limits: Limits, use_bwrap: bool, uid: int, here: bool = False
) -> ExecResult:
    """Start ``cmd`` (see ``spawn_here``) from this process's spawner (or from here); a
    SpawnerError when the spawner fails, never a made-up result."""
    if here:
        return spawn_here(cmd, env, cwd, stdin, limits, use_bwrap, uid)
    request = {
        "op": "spawn",
        "cmd": list(cmd),
        "env": env,
        "cwd": cwd,
        "stdin": stdin,
        "limits": asdict(limits),
        "use_bwrap": use_bwrap,
        "uid": uid,
    }
    # the wall limit, the group kill (up to 5 s) and a margin for a loaded machine
    return ExecResult(**_current().call(request, timeout=limits.wall_seconds + 60))


def close() -> None:
    """End this process's spawner (it would end with this process anyway)."""
    global _client
    with _client_lock:
        if _client is not None and _client.owner == os.getpid():
            _client.close()
        _client = None


def serve() -> None:
    """The spawner's loop: one JSON request a line on stdin, one answer a line on stdout."""
    parent, write_lock = os.getppid(), threading.Lock()
    out = sys.stdout.buffer

    def answer(message: dict) -> None:
        line = json.dumps(message).encode() + b"\n"
        with write_lock:
            try:
                out.write(line)
                out.flush()
            except BrokenPipeError:  # the caller is gone: nobody to tell
                pass

    def handle(request: dict) -> None:
        try:
            if request["op"] == "kill_uid":
                kill_uid_here(request["uid"])
                answer({"id": request["id"], "result": None})
                return
            result = spawn_here(
                request["cmd"],
                request["env"],
                request["cwd"],
                request["stdin"],
                Limits(**request["limits"]),
                request["use_bwrap"],
                request["uid"],
            )
            answer({"id": request["id"], "result": asdict(result)})
        except Exception as err:  # noqa: BLE001 - said to the caller, which counts it
            answer({"id": request["id"], "error": f"{type(err).__name__}: {err}"})

    running: list[threading.Thread] = []

    def finish() -> None:  # programs in flight end first (their wall limit), so none is orphaned
        for thread in list(running):
            thread.join()
        os._exit(0)

    def watch() -> None:  # the caller died without closing our stdin (its forked children hold it)
        while os.getppid() == parent:
            time.sleep(1)
        finish()

    # Ctrl-C in a terminal signals the caller's whole process group, this process too: the caller
    # decides what ends (its end of our stdin), so programs in flight still end by their own limits
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=watch, daemon=True).start()
    for line in sys.stdin.buffer:
        thread = threading.Thread(target=handle, args=(json.loads(line),), daemon=True)
        running[:] = [t for t in running if t.is_alive()] + [thread]
        thread.start()
    finish()  # stdin closed: the caller is done


if __name__ == "__main__":
    serve()
