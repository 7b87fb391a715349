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
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from pathlib import Path

from core.adapters import full_model_folder
from core.errors import RecipeError, SSPError
from sampling.generation import Completion, GenerationConfig, SamplingParams, make_backend

log = logging.getLogger("ssp")


class SamplingError(SSPError):
    """An engine process failed or died while sampling."""


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
    """One engine in a child process, driven over two pipes (pickled requests and replies)."""

    def __init__(self, index: int, gpus: str | None, cfg: GenerationConfig, batch_size: int, threads: int):
        self.index, self.gpus = index, gpus
        self.name = f"engine {index}" + (f" (GPUs {gpus})" if gpus else " (CPU)")
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = dict(os.environ)
        if gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpus
        else:  # CPU: split the cores instead of every engine using all of them (torch reads it)
            env["OMP_NUM_THREADS"] = str(threads)
        cmd = [sys.executable, "-m", "sampling.data_parallel", str(to_child_r), str(from_child_w)]
        self.proc = subprocess.Popen(cmd, env=env, pass_fds=(to_child_r, from_child_w))
        os.close(to_child_r)
        os.close(from_child_w)
        self.send = Connection(to_child_w, readable=False)
        self.recv = Connection(from_child_r, writable=False)
        try:
            self._call("start", cfg, batch_size)
        except BaseException:
            self.close()
            raise

    def _call(self, *request):
        try:
            self.send.send(request)
            status, value = self.recv.recv()
        except (EOFError, OSError, BrokenPipeError):
            code = self.proc.wait()
            raise SamplingError(
                f"{self.name} died (exit code {code}) during {request[0]!r}; its output is in the log above"
            ) from None
        if status == "error":
            raise SamplingError(f"{self.name} failed during {request[0]!r}: {value}")
        return value

    def load(self, model_dir: str) -> None:
        self._call("load", model_dir)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()

    def generate(self, prompts, params, desc) -> list[list[Completion]]:
        return self._call("generate", prompts, params, desc)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send.send(("close",))
                self.proc.wait(timeout=60)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        for conn in (self.send, self.recv):
            conn.close()


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
                    self.engines.append(_EngineProcess(i, gpus, cfg, batch_size, threads))
            except BaseException:
                self.close()
                raise
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
        (``jobs=None``: ``work(engine, None)`` once on every engine, as loading a model). The first
        error kills the other engines at once and is raised here."""
        if not self.engines:
            raise SamplingError("the sampling engines were stopped after an earlier error")
        if len(self.engines) == 1:
            for k in [None] if jobs is None else jobs:
                work(self.engines[0], k)
            return
        queue, lock, errors = list(jobs or []), threading.Lock(), []

        def drive(engine):
            while True:
                with lock:
                    if errors or (jobs is not None and not queue):
                        return
                    k = None if jobs is None else queue.pop(0)
                try:
                    work(engine, k)
                except BaseException as err:  # noqa: BLE001 - re-raised below, in the caller's thread
                    with lock:
                        errors.append(err)
                    for other in self.engines:  # no GPU keeps sampling for a call that failed
                        other.kill()
                    return
                if jobs is None:
                    return

        threads = [threading.Thread(target=drive, args=(e,), daemon=True) for e in self.engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:  # the first is the cause: the engines it killed failed after it was recorded
            self.close()
            raise errors[0]

    def close(self) -> None:
        for engine in getattr(self, "engines", []):
            engine.close()
        self.engines = []


def _serve(inbox: Connection, outbox: Connection) -> None:
    """The engine process: answer requests until ``close`` (or the parent's end of the pipe closes)."""
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
            outbox.send(("ok", value))
        except Exception as err:  # noqa: BLE001 - reported to the parent, which raises it
            log.error("sampling engine: %s", traceback.format_exc())
            outbox.send(("error", f"{type(err).__name__}: {err}"))
    if engine is not None:
        engine.close()


def make_generator(model_dir: str | Path, cfg: GenerationConfig | None = None, batch_size: int = 256):
    """The recipe's sampling engine(s), loaded with ``model_dir``: ``generation.data_parallel``
    engines of ``generation.backend``. ``batch_size``: sequences per transformers ``generate`` call
    (vLLM schedules its own batches)."""
    return ShardedGenerator(model_dir, cfg or GenerationConfig(), batch_size)


if __name__ == "__main__":  # python -m sampling.data_parallel INBOX_FD OUTBOX_FD
    from core.process import die_with_parent

    die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s ssp %(message)s", datefmt="%H:%M:%S")
    _serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
