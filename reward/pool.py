"""A process pool with a hard per-item timeout: a hung item's worker is killed and replaced.

``concurrent.futures`` cannot kill one hung task, and math-verify's own timeouts use
``signal.alarm``, which works only in a process's main thread. Here each worker is a
process with a pipe; the parent hands it one item at a time and waits on all pipes at once.
An item that outlives ``timeout`` seconds gets ``TIMEOUT`` as its result and its worker is
SIGKILLed and restarted; a worker that dies (e.g. out of memory under its address-space
limit) gives ``CRASHED``. The pool never raises because of an item.

Workers start with the ``forkserver`` method (no inherited threads or CUDA state from the
trainer), run in the main thread of their own process, and may set resource limits on
themselves through ``initializer``.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

TIMEOUT, CRASHED = "__timeout__", "__crashed__"


def _worker_loop(conn: Connection, fn: Callable, initializer: Callable | None) -> None:
    if initializer is not None:
        initializer()
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        index, item = job
        try:
            result = fn(item)
        except BaseException as err:  # noqa: BLE001 - an item must never kill the loop
            result = ("__error__", f"{type(err).__name__}: {err}"[:500])
        try:
            conn.send((index, result))
        except (BrokenPipeError, OSError):
            return


class _Worker:
    def __init__(self, ctx, fn, initializer):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_loop, args=(child, fn, initializer), daemon=True)
        self.proc.start()
        child.close()
        self.job: int | None = None  # index of the item in flight
        self.deadline = 0.0

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()


class HardTimeoutPool:
    def __init__(
        self,
        fn: Callable[[Any], Any],
        workers: int,
        timeout: float,
        initializer: Callable[[], None] | None = None,
    ):
        self.fn, self.timeout, self.initializer = fn, timeout, initializer
        self.size = max(1, workers)
        self._ctx = mp.get_context("forkserver")
        self._workers: list[_Worker] = []
        self.restarts = 0
        atexit.register(self.close)

    def _ensure(self) -> None:
        while len(self._workers) < self.size:
            self._workers.append(_Worker(self._ctx, self.fn, self.initializer))

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self._workers.remove(w)
        self.restarts += 1
        self._ensure()

    def map(self, items: Sequence[Any]) -> list[Any]:
        """Results in order; ``TIMEOUT`` or ``CRASHED`` for items that hung or killed their worker."""
        self._ensure()
        results: list[Any] = [None] * len(items)
        pending = list(range(len(items)))[::-1]
        busy: dict[Connection, _Worker] = {}
        while pending or busy:
            for w in self._workers:  # hand out work to idle workers
                if w.job is None and pending:
                    w.job = pending.pop()
                    w.deadline = time.monotonic() + self.timeout
                    try:
                        w.conn.send((w.job, items[w.job]))
                    except (BrokenPipeError, OSError):
                        results[w.job] = CRASHED
                        w.job = None
                        self._replace(w)
                        break
                    busy[w.conn] = w
            if not busy:
                continue
            now = time.monotonic()
            ready = wait(list(busy), timeout=max(0.0, min(w.deadline for w in busy.values()) - now))
            for conn in ready:
                w = busy.pop(conn)
                try:
                    index, result = conn.recv()
                    results[index] = result
                    w.job = None
                except (EOFError, OSError):
                    results[w.job] = CRASHED
                    w.job = None
                    self._replace(w)
            now = time.monotonic()
            for conn, w in list(busy.items()):
                if w.deadline <= now:
                    busy.pop(conn)
                    results[w.job] = TIMEOUT
                    w.job = None
                    self._replace(w)
        return results

    def close(self) -> None:
        for w in self._workers:
            try:
                w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for w in self._workers:
            w.proc.join(timeout=1)
            w.kill()
        self._workers = []

    def __del__(self):  # pragma: no cover - best effort at interpreter exit
        if os.getpid() is not None:
            try:
                self.close()
            except Exception:
                pass
