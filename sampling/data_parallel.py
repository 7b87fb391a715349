"""Sampling on every GPU of a node: prompts in seeded shards, shards spread over engine processes.

    gen = ShardedGenerator(model_dir, GenerationConfig(backend="vllm", data_parallel="auto"))
    outs = gen.generate(prompts, SamplingParams(n=16, temperature=1.0, seed=0))   # as one engine would

``generation.data_parallel`` engines each run in a process of their own (``python -m
sampling.data_parallel``) on their own ``tensor_parallel_size`` GPUs (``CUDA_VISIBLE_DEVICES``);
the prompts of a call are cut into shards of ``generation.shard_prompts`` and each engine takes the
next shard as soon as it is free. With one engine it runs in this process, as before.

Same seeds, same samples, on any number of engines: shard k is sampled with seed ``seed + k``
(shard 0 with the call's own seed, so a call that fits one shard samples exactly as the bare
engine does), and what an engine samples for a shard depends only on that shard and its seed, not
on which engine took it. That holds where the engine's result for a batch is deterministic: the
transformers backend and vLLM on CPU (both seed a generator per call), vLLM on GPU with seeded
requests up to its kernels' batch-dependent rounding. The departure: a call larger than one shard
is no longer one batch, so an engine drains between shards (pick ``shard_prompts`` so that a shard
keeps an engine busy: 256 prompts x 16 samples is 4,096 sequences).

An engine process that fails or dies stops the call with an error naming the engine, its GPUs
and the cause; the other engines are stopped. Engine processes die with this one (``kill -9``
included: ``core/process.py``); on a CPU machine the cores are split between them.

An engine process that goes silent is declared hung: a thread in it sends a heartbeat every
``heartbeat_interval`` (5 s; a tenth of the limit when that is shorter), and after
``generation.engine_timeout_s`` (600 s) in which it sent nothing, heartbeat or reply, and its main
thread used no CPU time (a main thread busy holding Python's lock delays the heartbeat, but runs),
its process group is killed (SIGKILL) and its shard goes back to the queue for the other engines:
the shard's seed is fixed by its index, so its samples are the same. With no engine left the call
stops with an error naming the engine (index, GPUs, pid), the silence and the key. Caught: a
stopped process (SIGSTOP, a frozen container), a main thread blocked while holding Python's lock,
a reply that stops halfway through the pipe. Not caught: a process stuck in native code that
released the lock (a collective that never completes, a deadlock on a lock, a kernel that never
returns) while its heartbeat thread runs on, one spinning while it holds the lock, and the
one-engine case, which samples in this process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import TYPE_CHECKING

from ssp.core.adapters import full_model_folder
from ssp.core.errors import RecipeError, SSPError

if TYPE_CHECKING:  # imported where used: an engine process starts its heartbeat before torch loads
    from ssp.sampling.generation import Completion, GenerationConfig, SamplingParams

log = logging.getLogger("ssp")

CLOSE_GRACE_S = 60.0  # an engine asked to close gets this long before it is killed


class SamplingError(SSPError):
    """An engine process failed, died or went silent while sampling."""


class EngineHung(SamplingError):
    """An engine process sent nothing, not even a heartbeat, and its main thread ran nothing for
    ``generation.engine_timeout_s``: it was killed."""


def main_thread_cpu(pid: int) -> int | None:
    """CPU time (clock ticks) the main thread of process ``pid`` has used; None where /proc does not say.
    An engine busy holding Python's lock (importing torch: a second or two under load) sends no
    heartbeat but runs; a stopped or blocked one does neither."""
    try:
        with open(f"/proc/{pid}/task/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    except (OSError, IndexError, ValueError):
        return None


def heartbeat_interval(timeout_s: float) -> float:
    """Seconds between an engine process's heartbeats: 5, or a tenth of the silence limit if shorter."""
    return min(5.0, timeout_s / 10)


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (empty without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def gpus_per_engine(cfg: GenerationConfig) -> int:
    """tensor_parallel_size for vLLM; a transformers engine uses one GPU."""
    return cfg.tensor_parallel_size if cfg.backend == "vllm" else 1


def engine_count(cfg: GenerationConfig, gpus: list[str] | None = None) -> int:
    """Engines ``cfg`` asks for: ``auto`` = as many as the visible GPUs hold at tensor_parallel_size
    each (1 without a GPU). More than the GPUs hold is a RecipeError naming the keys."""
    gpus = visible_gpus() if gpus is None else gpus
    tp = gpus_per_engine(cfg)
    if cfg.data_parallel == "auto":
        return max(1, len(gpus) // tp)
    if gpus and cfg.data_parallel * tp > len(gpus):
        raise RecipeError(
            f"generation.data_parallel={cfg.data_parallel} x generation.tensor_parallel_size={tp} needs "
            f"{cfg.data_parallel * tp} GPUs; this machine shows {len(gpus)} ({','.join(gpus)})"
        )
    return cfg.data_parallel


def engine_gpu_sets(cfg: GenerationConfig, gpus: list[str] | None = None) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES of each engine (None for every engine on a CPU machine)."""
    gpus = visible_gpus() if gpus is None else gpus
    n, tp = engine_count(cfg, gpus), gpus_per_engine(cfg)
    if not gpus:
        return [None] * n
    return [",".join(gpus[i * tp : (i + 1) * tp]) for i in range(n)]


def shards(count: int, size: int) -> list[range]:
    return [range(s, min(s + size, count)) for s in range(0, count, size)]


def shard_params(params: SamplingParams, k: int) -> SamplingParams:
    """Shard ``k``'s sampling parameters: the call's, with seed + k."""
    from dataclasses import replace

    return replace(params, seed=params.seed + k)


class _InProcess:
    """The one-engine case: the backend in this process."""

    def __init__(self, cfg: GenerationConfig, batch_size: int):
        self.cfg, self.batch_size, self.engine = cfg, batch_size, None
        self.name = "engine 0 (this process)"

    def load(self, model_dir: str) -> None:
        if self.engine is None:
            from ssp.sampling.generation import make_backend

            self.engine = make_backend(model_dir, self.cfg, self.batch_size)
        else:
            self.engine.load(model_dir)

    def generate(self, prompts, params, desc) -> list[list[Completion]]:
        return self.engine.generate(prompts, params, desc=desc)

    def kill(self) -> None:
        pass  # the call runs in this thread: nothing else to stop

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


class _EngineProcess:
    """One engine in a child process, driven over two pipes (pickled requests and replies).

    The child sends a heartbeat every ``heartbeat_interval`` seconds from a thread of its own, and a
    reader thread here takes every message off the pipe as it comes: a call waits for its reply on a
    queue, and ``cfg.engine_timeout_s`` without any message (reply or heartbeat) and without CPU time
    used by the child's main thread kills the engine's process group and raises EngineHung. Requests
    are written from a thread too, so a child that stopped reading cannot block the caller either."""

    def __init__(self, index: int, gpus: str | None, cfg: GenerationConfig, threads: int):
        """Start the process (``start`` makes its engine: the processes of a generator start at once)."""
        self.index, self.gpus, self.timeout = index, gpus, float(cfg.engine_timeout_s)
        self.name = f"engine {index}" + (f" (GPUs {gpus})" if gpus else " (CPU)")
        self.killed, self.beats, self.heard = False, 0, time.monotonic()
        self.replies: queue.SimpleQueue = queue.SimpleQueue()
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = dict(os.environ)
        if gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpus
        else:  # CPU: split the cores instead of every engine using all of them (torch reads it)
            env["OMP_NUM_THREADS"] = str(threads)
        cmd = [sys.executable, "-m", "ssp.sampling.data_parallel", str(to_child_r), str(from_child_w)]
        cmd.append(str(heartbeat_interval(self.timeout)))
        # a process group of its own: a hung engine is killed with whatever it started (vLLM's workers)
        self.proc = subprocess.Popen(cmd, env=env, pass_fds=(to_child_r, from_child_w), process_group=0)
        os.close(to_child_r)
        os.close(from_child_w)
        self.send = Connection(to_child_w, readable=False)
        self.recv = Connection(from_child_r, writable=False)
        self.reader = threading.Thread(target=self._read, name=f"ssp {self.name} reader", daemon=True)
        self.reader.start()

    def start(self, cfg: GenerationConfig, batch_size: int) -> None:
        self._call("start", cfg, batch_size)

    @property
    def label(self) -> str:
        """The engine as the hang message names it: index, GPUs and pid."""
        return f"{self.name[:-1]}; pid {self.proc.pid})"

    def _read(self) -> None:
        """The reader thread: heartbeats mark the engine alive, anything else is a reply; None = the
        pipe closed (the engine died)."""
        while True:
            try:
                message = self.recv.recv()
            except (EOFError, OSError):
                self.replies.put(None)
                return
            except Exception as err:  # noqa: BLE001 - an unreadable reply fails the call that waits for it
                self.replies.put(("error", f"its reply could not be read: {type(err).__name__}: {err}"))
                return
            self.heard = time.monotonic()
            if message[0] == "beat":
                self.beats += 1
            else:
                self.replies.put(message)

    def _post(self, request: tuple) -> None:
        """Write ``request`` from a thread (pickled here, so that a bad request fails the caller)."""
        data = ForkingPickler.dumps(request)

        def write():
            with contextlib.suppress(Exception):  # a dead engine: its reader reports the closed pipe
                self.send.send_bytes(data)

        threading.Thread(target=write, name=f"ssp {self.name} writer", daemon=True).start()

    def _call(self, op: str, *args, what: str = ""):
        """Send a request and wait for its reply; hung (EngineHung) after ``timeout`` seconds in which
        the engine sent nothing and its main thread ran nothing (see ``main_thread_cpu``)."""
        self._post((op, *args))
        during = f"{op!r}" + (f" ({what})" if what else "")
        started = ran = time.monotonic()
        cpu = main_thread_cpu(self.proc.pid)
        while True:
            silent = time.monotonic() - max(self.heard, started, ran)
            if silent >= self.timeout:
                break
            try:
                reply = self.replies.get(timeout=min(max(0.01, self.timeout - silent), 1.0))
            except queue.Empty:
                now_cpu = main_thread_cpu(self.proc.pid)
                if now_cpu is not None and now_cpu != cpu:
                    cpu, ran = now_cpu, time.monotonic()
                continue
            if reply is None:
                code = self.proc.wait()
                raise SamplingError(
                    f"{self.name} died (exit code {code}) during {during}; its output is in the log above"
                )
            status, value = reply
            if status == "error":
                raise SamplingError(f"{self.name} failed during {op!r}: {value}")
            return value
        code = self.proc.poll()
        self.kill()
        if code is not None:  # it exited, but something it started still holds the pipe
            raise SamplingError(
                f"{self.name} died (exit code {code}) during {during}; its output is in the log above"
            )
        raise EngineHung(
            f"{self.label} sent nothing, not even a heartbeat, and ran nothing for {silent:.0f} s during "
            f"{during} (generation.engine_timeout_s={self.timeout:g}): hung (stopped, or blocked holding "
            "Python's lock); killed"
        )

    def load(self, model_dir: str) -> None:
        self._call("load", model_dir)

    def kill(self) -> None:
        """SIGKILL the engine's process group (it and whatever it started; a stopped one too)."""
        self.killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def generate(self, prompts, params, desc) -> list[list[Completion]]:
        return self._call("generate", prompts, params, desc, what=desc)

    def close(self) -> None:
        if not self.killed and self.proc.poll() is None:
            self._post(("close",))
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=CLOSE_GRACE_S)
        self.kill()  # what the engine left behind; the engine itself if it did not close in time
        try:
            self.proc.wait(timeout=CLOSE_GRACE_S)
        except subprocess.TimeoutExpired:  # in uninterruptible sleep (a driver, NFS): reaped when it leaves
            log.warning("sampling: %s does not exit after SIGKILL; left to the kernel", self.name)
            return
        self.reader.join(timeout=5)  # the pipe closed with the group: the reader has seen EOF
        self.send.close()
        if not self.reader.is_alive():
            self.recv.close()


class ShardedGenerator:
    """The generation interface (``load``, ``generate``, ``close``) over ``cfg.data_parallel``
    engines; see the module docstring."""

    def __init__(self, model_dir: str | Path, cfg: GenerationConfig, batch_size: int = 256):
        self.cfg, self.model_dir = cfg, None
        # Inside a torchrun worker (the RL pass-rate filter) each rank samples on its own GPU: one
        # engine in the process; the shards give the same samples as data_parallel engines would.
        gpu_sets = [None] if "LOCAL_RANK" in os.environ else engine_gpu_sets(cfg)
        if len(gpu_sets) == 1:
            self.engines = [_InProcess(cfg, batch_size)]
        else:
            threads = max(1, len(os.sched_getaffinity(0)) // len(gpu_sets))
            self.engines = []
            try:
                for i, gpus in enumerate(gpu_sets):
                    self.engines.append(_EngineProcess(i, gpus, cfg, threads))
            except BaseException:
                self.close()
                raise
            self._each(lambda e, _: e.start(cfg, batch_size), None)  # importing torch: all at once
            log.info("sampling: %d engines: %s", len(self.engines), ", ".join(e.name for e in self.engines))
        self.load(model_dir)

    def load(self, model_dir: str | Path) -> None:
        """Every engine loads ``model_dir`` (a LoRA adapter folder is merged once, here)."""
        model_dir = str(full_model_folder(model_dir))
        if model_dir == self.model_dir:
            return
        self._each(lambda e, _: e.load(model_dir), None)
        self.model_dir = model_dir

    def generate(
        self, prompts: list[list[dict]], params: SamplingParams, desc: str = "sampling"
    ) -> list[list[Completion]]:
        """Every prompt's samples, in prompt order; a shard an engine hung on is sampled by another."""
        parts = shards(len(prompts), self.cfg.shard_prompts)
        results: list = [None] * len(parts)

        def work(engine, k):
            many = len(parts) > 1
            label = f"{desc} shard {k + 1}/{len(parts)}" if many else desc
            results[k] = engine.generate([prompts[i] for i in parts[k]], shard_params(params, k), label)

        self._each(work, list(range(len(parts))))
        return [outs for part in results for outs in part]

    def _each(self, work, jobs: list | None) -> None:
        """Run ``work(engine, job)`` for every job, each engine taking the next job when free
        (``jobs=None``: ``work(engine, None)`` once on every engine, as loading a model). An engine
        declared hung is dropped and its job goes to the others (an error if none is left); any other
        error kills the other engines at once and is raised here."""
        if not self.engines:
            raise SamplingError("the sampling engines were stopped after an earlier error")
        if isinstance(self.engines[0], _InProcess):
            for k in [None] if jobs is None else jobs:
                work(self.engines[0], k)
            return
        cond, errors, pending, running = threading.Condition(), [], list(jobs or []), [0]

        def hung(engine, err: EngineHung, k) -> None:
            """``engine`` was killed: drop it, and put its job back for the others (under ``cond``)."""
            self.engines = [e for e in self.engines if e is not engine]
            if errors:
                return
            shard = "" if k is None else f"shard {k + 1}/{len(jobs)}"
            if not self.engines:
                errors.append(
                    EngineHung(f"{err}; no engine is left" + (f" to sample {shard}" if shard else ""))
                )
                return
            if k is not None:
                pending.insert(0, k)
            left = ", ".join(e.name for e in self.engines)
            log.warning("sampling: %s; %s goes on with the engines left: %s", err, shard or "sampling", left)

        def drive(engine):
            while True:
                with cond:
                    while jobs is not None and not pending and running[0] and not errors:
                        cond.wait()  # a shard in progress may come back if its engine hangs
                    if errors or (jobs is not None and not pending):
                        return
                    k = None if jobs is None else pending.pop(0)
                    running[0] += 1
                try:
                    work(engine, k)
                except EngineHung as err:
                    engine.kill()  # its shard goes to the others first, then it is reaped
                    with cond:
                        running[0] -= 1
                        hung(engine, err, k)
                        cond.notify_all()
                    engine.close()  # waits at most CLOSE_GRACE_S for a process the kernel holds (D state)
                    return
                except BaseException as err:  # noqa: BLE001 - re-raised below, in the caller's thread
                    with cond:
                        running[0] -= 1
                        errors.append(err)
                        cond.notify_all()
                    for other in list(self.engines):  # no GPU keeps sampling for a call that failed
                        other.kill()
                    return
                with cond:
                    running[0] -= 1
                    cond.notify_all()
                if jobs is None:
                    return

        threads = [threading.Thread(target=drive, args=(e,), daemon=True) for e in self.engines]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        except BaseException:  # Ctrl-C: the engines' process groups do not get the terminal's signal
            for engine in list(self.engines):
                engine.kill()
            self.close()
            raise
        if errors:  # the first is the cause: the engines it killed failed after it was recorded
            self.close()
            raise errors[0]

    def close(self) -> None:
        for engine in getattr(self, "engines", []):
            engine.close()
        self.engines = []


def _serve(inbox: Connection, outbox: Connection, heartbeat_s: float) -> None:
    """The engine process: answer requests until ``close`` (or the parent's end of the pipe closes),
    with a heartbeat every ``heartbeat_s`` seconds from a thread, whatever the engine is doing."""
    lock = threading.Lock()

    def post(message: tuple) -> None:
        data = ForkingPickler.dumps(message)
        with lock:
            outbox.send_bytes(data)

    def beat():
        while True:
            time.sleep(heartbeat_s)
            try:
                post(("beat",))
            except OSError:  # the parent is gone
                return

    threading.Thread(target=beat, name="ssp engine heartbeat", daemon=True).start()
    engine = None
    while True:
        try:
            request = inbox.recv()
        except EOFError:
            break
        op, args = request[0], request[1:]
        if op == "close":
            break
        try:
            if op == "start":
                engine, value = _InProcess(*args), None
            elif op == "load":
                value = engine.load(*args)
            elif op == "generate":
                value = engine.generate(*args)
            else:
                raise ValueError(f"unknown request {op!r}")
            post(("ok", value))
        except Exception as err:  # noqa: BLE001 - reported to the parent, which raises it
            log.error("sampling engine: %s", traceback.format_exc())
            post(("error", f"{type(err).__name__}: {err}"))
    if engine is not None:
        engine.close()


def make_generator(model_dir: str | Path, cfg: GenerationConfig | None = None, batch_size: int = 256):
    """The recipe's sampling engine(s), loaded with ``model_dir``: ``generation.data_parallel``
    engines of ``generation.backend``. ``batch_size``: sequences per transformers ``generate`` call
    (vLLM schedules its own batches)."""
    from ssp.sampling.generation import GenerationConfig

    return ShardedGenerator(model_dir, cfg or GenerationConfig(), batch_size)


if __name__ == "__main__":  # python -m ssp.sampling.data_parallel INBOX_FD OUTBOX_FD HEARTBEAT_S
    from ssp.core.process import die_with_parent

    die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s ssp %(message)s", datefmt="%H:%M:%S")
    inbox, outbox = Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False)
    _serve(inbox, outbox, float(sys.argv[3]))
