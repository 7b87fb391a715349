"""Scoring processes with a hard per-item timeout, started as fresh interpreters.

    pool = HardTimeoutPool("ssp.reward.math_correctness:score_item", workers=8, timeout=10, memory_mb=2048)
    pool.map([("1/2", r"\\boxed{0.5}"), ...])    # -> [Outcome("ok", 1.0), Outcome("timeout"), ...]

Why not ``multiprocessing``: its ``spawn`` and ``forkserver`` children import the parent's
``__main__`` module again, and every stage's main module imports torch, transformers and TRL.
With a CUDA build of torch that is ~17 GB of address space in each worker before it scores
anything, so an address-space cap of a few GB failed every item (and a script without an
``if __name__ == "__main__":`` guard could not start workers at all). ``fork`` would copy the
trainer, its threads and its CUDA state. Here each worker is ``sys.executable -c <boot>``: a new
interpreter that imports only the scoring module (no torch), talks to the parent over an
anonymous socket pair (nothing on the file system another process could connect to), and dies
with its parent (``PR_SET_PDEATHSIG``).

Each worker imports its module and runs the module's ``warm_up()`` (if any) *before* it reports
ready; only then is it handed an item and only then does that item's clock start, so a
replacement worker's start-up is never charged to an item. The memory cap (``RLIMIT_AS``) is set
after warm-up, at the worker's own address space plus ``memory_mb``: it bounds what items add,
whatever the parent process had mapped.

Every item ends as an ``Outcome``: ``ok`` (the function's return value), ``timeout`` (it outlived
``timeout`` seconds: its worker is SIGKILLed and replaced) or ``error`` (the function raised, or the
worker died; the message says which). A worker that cannot start raises ``PoolError`` with its
message: that is not an item's fault and must stop the caller, never become a score.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections import deque
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, NamedTuple

from ssp.core.process import die_with_parent

OK, TIMEOUT, ERROR = "ok", "timeout", "error"


class Outcome(NamedTuple):
    status: str  # ok | timeout | error
    value: Any = None
    message: str = ""


class PoolError(RuntimeError):
    """A worker could not start (or the pool is unusable): the caller must stop, not score."""


_BOOT = (
    "import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
    "from ssp.reward.pool import worker_main; worker_main(*sys.argv[2:])"
)


def _address_space() -> int:
    """This process's virtual memory size in bytes (VmSize)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def worker_main(fd: str, target: str, memory_mb: str) -> None:
    """The worker process: import ``target``'s module, warm up, cap memory, then score items."""
    die_with_parent()
    conn = Connection(int(fd))
    try:
        module_name, fn_name = target.split(":")
        module = importlib.import_module(module_name)
        fn = getattr(module, fn_name)
        if hasattr(module, "warm_up"):
            module.warm_up()
        baseline = _address_space()
        if int(memory_mb) > 0:
            limit = baseline + (int(memory_mb) << 20)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except BaseException as err:  # noqa: BLE001 - reported to the parent, which raises PoolError
        conn.send(("failed", f"{type(err).__name__}: {err}"[:2000]))
        return
    conn.send(("ready", os.getpid(), baseline))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        index, item = job
        fatal = False
        try:
            outcome = (index, OK, fn(item), "")
        except MemoryError:
            fatal = True  # a half-failed allocation can leave the interpreter unusable: restart
            outcome = (index, ERROR, None, f"MemoryError: over memory_mb={memory_mb} MB above start-up")
        except BaseException as err:  # noqa: BLE001 - an item's error is its outcome
            outcome = (index, ERROR, None, f"{type(err).__name__}: {err}"[:500])
        try:
            conn.send(outcome)
        except (BrokenPipeError, OSError):
            return
        if fatal:
            return


class _Worker:
    def __init__(self, target: str, memory_mb: int, start_timeout: float):
        parent_sock, child_sock = socket.socketpair()
        self.log = tempfile.TemporaryFile()  # the worker's stdout/stderr, read only if it fails
        paths = [os.path.abspath(p or ".") for p in sys.path]  # "" is the working directory
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _BOOT,
                    json.dumps(paths),
                    str(child_sock.fileno()),
                    target,
                    str(memory_mb),
                ],
                pass_fds=(child_sock.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=self.log,
                stderr=self.log,
                close_fds=True,
            )
        except OSError as err:
            parent_sock.close()
            self.log.close()
            raise PoolError(f"cannot start a worker with {sys.executable}: {err}") from None
        finally:
            child_sock.close()
        self.conn = Connection(parent_sock.detach())
        self.state = "starting"  # starting | idle | busy
        self.deadline = time.monotonic() + start_timeout
        self.job: int | None = None

    def output(self) -> str:
        """The last lines the worker wrote to stdout/stderr (why it died)."""
        try:
            self.log.seek(0)
            text = self.log.read()[-4000:].decode("utf-8", errors="replace").strip()
        except (OSError, ValueError):
            return ""
        lines = text.splitlines()
        fatal = [line for line in lines if line.startswith("Fatal Python error")]
        return (fatal or lines or [""])[-1]

    def exit_reason(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "worker stopped answering"
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        last = self.output()
        return f"worker {how}" + (f": {last}" if last else "")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.conn.close()
        self.log.close()


def _close_all(workers: list[_Worker]) -> None:
    for w in workers:
        with contextlib.suppress(BrokenPipeError, OSError):
            w.conn.send(None)
    for w in workers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            w.proc.wait(timeout=1)
        w.kill()
    workers.clear()


class HardTimeoutPool:
    """``workers`` scoring processes running ``target`` ("module:function"); see the module docstring."""

    def __init__(
        self,
        target: str,
        workers: int,
        timeout: float,
        memory_mb: int = 0,
        start_timeout: float = 120.0,
    ):
        self.target, self.timeout, self.memory_mb = target, timeout, memory_mb
        self.size, self.start_timeout = max(1, workers), start_timeout
        self._workers: list[_Worker] = []
        self.restarts = 0
        # Close at exit without keeping the pool alive through the atexit registry.
        self._finalizer = weakref.finalize(self, _close_all, self._workers)
        atexit.register(self._finalizer)

    def _ensure(self) -> None:
        while len(self._workers) < self.size:
            self._workers.append(_Worker(self.target, self.memory_mb, self.start_timeout))

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self._workers.remove(w)
        self.restarts += 1
        self._ensure()

    def _fail(self, message: str) -> None:
        self.close()
        raise PoolError(f"a scoring worker for {self.target} could not start: {message}")

    def map(self, items: Sequence[Any]) -> list[Outcome]:
        """One ``Outcome`` per item, in order."""
        self._ensure()
        results: list[Outcome | None] = [None] * len(items)
        pending = deque(range(len(items)))
        while pending or any(w.state == "busy" for w in self._workers):
            for w in self._workers:  # hand out work to ready, idle workers
                if w.state == "idle" and pending:
                    if (
                        w.proc.poll() is not None
                    ):  # died while idle (e.g. the OOM killer): not an item's fault
                        self._replace(w)
                        break
                    w.job = pending.popleft()
                    try:
                        w.conn.send((w.job, items[w.job]))
                    except (BrokenPipeError, OSError):
                        pending.appendleft(w.job)  # not the item's fault: retry it elsewhere
                        self._replace(w)
                        break
                    w.state, w.deadline = "busy", time.monotonic() + self.timeout
            waiting = {w.conn: w for w in self._workers if w.state in ("starting", "busy")}
            if not waiting:
                continue
            soonest = min(w.deadline for w in waiting.values())
            for conn in wait(list(waiting), timeout=max(0.0, soonest - time.monotonic())):
                self._receive(waiting[conn], results)
            now = time.monotonic()
            for w in list(self._workers):
                if w.state == "starting" and w.deadline <= now:
                    self._fail(f"no answer within {self.start_timeout:.0f} s ({w.output() or 'no output'})")
                elif w.state == "busy" and w.deadline <= now:
                    results[w.job] = Outcome(TIMEOUT, None, f"no result within {self.timeout:g} s")
                    self._replace(w)
        return results  # type: ignore[return-value]

    def _receive(self, w: _Worker, results: list) -> None:
        try:
            message = w.conn.recv()
        except (EOFError, OSError):
            if w.state == "starting":
                self._fail(w.exit_reason())
            results[w.job] = Outcome(ERROR, None, w.exit_reason())
            self._replace(w)
            return
        if w.state == "starting":
            if message[0] != "ready":
                self._fail(message[1])
            w.state = "idle"
            return
        index, status, value, text = message
        results[index] = Outcome(status, value, text)
        w.state, w.job = "idle", None
        if w.proc.poll() is not None or (status == ERROR and text.startswith("MemoryError")):
            self._replace(w)  # the worker exits after a MemoryError

    def close(self) -> None:
        _close_all(self._workers)
