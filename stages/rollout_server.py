"""RL with a vLLM server the stage starts itself: ``rl.rollout.server_gpus``.

    rl.rollout: {engine: vllm, vllm_mode: server, server_gpus: 2}   # 8-GPU node: 6 train, 2 serve

The rl stage's launcher (``launch/runner.py``) splits the node's visible GPUs: the last
``server_gpus`` run TRL's ``trl vllm-serve`` (tensor parallel over them) on the spectrum model,
the others run the torchrun workers. It waits for the server's ``/health`` before starting
training, logs the server to ``logs/rl-vllm-server.log``, and stops it (SIGTERM to its process group,
SIGKILL after ``STOP_GRACE_S``) when the stage ends, fails or is interrupted; the server is also
tied to ``ssp`` by the kernel (``core/process.py``), so ``kill -9 ssp`` stops it too. Every phase
uses the same server: TRL pushes the policy's weights to it before each step's rollouts, so it
starts from the spectrum model and follows the training from there.

The server's GPUs count in the stage's cost (``stages/spec.py: extra_gpus``). GPU only: TRL's trainer sends weights to the server over NCCL and refuses a CPU trainer ("Weight
synchronization ... needs a CUDA device"); on a machine without CUDA the recipe is refused before
anything starts. Single node: across nodes, start the server yourself and set ``server_base_url``
(docs/cluster.md). TRL 1.16's ``vllm-serve`` execs ``vllm serve`` (the official vLLM's command).

While the stage trains, a thread checks the server's ``/health`` every ``HEALTH_EVERY_S``: a server
that exited, or did not answer for ``rl.rollout.server_timeout`` seconds (stopped, hung), is killed
with its process group, which fails the trainer's pending requests; if the training has still not
ended ``STOP_GRACE_S`` later (a weight sync blocked in NCCL), the launcher's main thread is
interrupted, which kills torchrun: with SIGUSR1 and a handler of its own (``ServerLost``), not
SIGINT, which a launcher started in the background (``nohup ssp run ... &``) ignores. The error (logged at once; raised when the training had to be
interrupted, else torchrun's exit code fails the stage) names the server, the silence, the key and
the end of its log. Not caught: a server whose ``/health`` answers while its engine does not.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from ssp.config.recipe import Recipe
from ssp.core.errors import RecipeError, StageError
from ssp.core.process import tied_command

EPHEMERAL_PORTS = range(32768, 61000)  # Linux's default ip_local_port_range: no fixed port there

log = logging.getLogger("ssp")

STOP_GRACE_S = 30.0
HEALTH_EVERY_S = 10.0  # while training: seconds between health checks (a quarter of the limit if shorter)


def gpu_split(recipe: Recipe, gpus: list[str]) -> tuple[list[str], list[str]]:
    """(server GPUs, training GPUs) of ``gpus`` (the node's visible ones, in order)."""
    n = recipe.rl.rollout.server_gpus
    if not gpus:
        raise RecipeError(
            "rl.rollout.server_gpus: a vLLM server for RL needs CUDA GPUs (TRL sends the weights over "
            "NCCL; it refuses a CPU trainer); on this machine use rl.rollout.vllm_mode=colocate or engine=hf"
        )
    if n >= len(gpus):
        raise RecipeError(
            f"rl.rollout.server_gpus={n}: this node shows {len(gpus)} GPUs ({','.join(gpus)}); "
            "leave at least one for training"
        )
    return gpus[-n:], gpus[:-n]


def training_nproc(recipe: Recipe, train_gpus: list[str]) -> int:
    """rl.nproc_per_node against the GPUs left to training (``auto``: all of them)."""
    want = recipe.rl.nproc_per_node
    if want == "auto":
        return len(train_gpus)
    if want > len(train_gpus):
        raise RecipeError(
            f"rl.nproc_per_node={want}, but rl.rollout.server_gpus={recipe.rl.rollout.server_gpus} leaves "
            f"{len(train_gpus)} of the node's GPUs to training: set rl.nproc_per_node to at most "
            f"{len(train_gpus)}, or to auto"
        )
    return want


def server_command(recipe: Recipe, model: str, gpus: int) -> list[str]:
    """``trl vllm-serve`` for the spectrum model, through this interpreter."""
    r = recipe.rl.rollout
    cmd = [
        sys.executable,
        "-m",
        "trl.scripts.vllm_serve",
        "--model",
        model,
        "--host",
        r.server_host,
        "--port",
        str(r.server_port),
        "--tensor_parallel_size",
        str(gpus),
    ]  # its GPUs are its own: TRL's default gpu_memory_utilization (0.9), not the colocated share
    if r.max_model_length:
        cmd += ["--max_model_len", str(r.max_model_length)]
    return cmd


class Server:
    """A server process: started in a session of its own, healthy within ``timeout`` or an error,
    stopped with its whole process group. ``url``: its health endpoint."""

    def __init__(self, cmd: list[str], url: str, log_file: Path, env: dict[str, str], timeout: float):
        self.cmd, self.url, self.log_file, self.timeout = cmd, url, log_file, timeout
        self.failure: str | None = None  # why the watch stopped the server during training
        self._done = threading.Event()
        self._previous_handler = None  # SIGUSR1 handler before watch() (main thread only)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_file.open("ab")
        self.proc = subprocess.Popen(
            tied_command(cmd), stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def _tail(self, lines: int = 15) -> str:
        try:
            return "\n    ".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_healthy(self) -> None:
        start = time.monotonic()
        while True:
            code = self.proc.poll()
            if code is not None:
                raise StageError(
                    f"the vLLM server exited with code {code} before it was healthy ({' '.join(self.cmd[1:4])} "
                    f"...); its log {self.log_file} ends:\n    {self._tail()}"
                )
            if self._answers(timeout=5):
                log.info("rl: vLLM server healthy after %.0f s (%s)", time.monotonic() - start, self.url)
                return
            if time.monotonic() - start > self.timeout:
                raise StageError(
                    f"the vLLM server was not healthy at {self.url} after {self.timeout:.0f} s "
                    f"(rl.rollout.server_timeout); its log {self.log_file} ends:\n    {self._tail()}"
                )
            time.sleep(1.0)

    def _answers(self, timeout: float) -> bool:
        """Whether ``/health`` answers 200 within ``timeout`` seconds."""
        with contextlib.suppress(OSError, http.client.HTTPException):
            with urllib.request.urlopen(self.url, timeout=timeout) as reply:  # noqa: S310 - our own server
                return reply.status == 200
        return False

    def watch(self) -> None:
        """Check the server's health until ``stop``, from a thread (see the module docstring). The
        main thread is interrupted only when ``watch`` was called from it (the launcher's)."""
        every = min(HEALTH_EVERY_S, self.timeout / 4)
        here = threading.current_thread()
        main = here if here is threading.main_thread() else None
        if main is not None:  # SIGUSR1, not SIGINT: `nohup ssp run ... &` starts with SIGINT ignored
            self._previous_handler = signal.signal(signal.SIGUSR1, _raise_server_lost)

        def run():
            last_answer = time.monotonic()
            while not self._done.wait(every):
                code = self.proc.poll()
                if code is None and self._answers(timeout=every):
                    last_answer = time.monotonic()
                    continue
                silent = time.monotonic() - last_answer
                if code is None and silent < self.timeout:
                    continue
                if code is not None:
                    self.failure = f"the vLLM server exited with code {code} during training"
                else:
                    self.failure = (
                        f"the vLLM server did not answer at {self.url} for {silent:.0f} s during training "
                        f"(rl.rollout.server_timeout={self.timeout:g}): hung or stopped; killed"
                    )
                self.failure += f"; its log {self.log_file} ends:\n    {self._tail()}"
                log.error("rl: %s", self.failure)
                with contextlib.suppress(ProcessLookupError):  # the trainer's pending requests fail now
                    os.killpg(self.proc.pid, signal.SIGKILL)
                if main is not None and not self._done.wait(STOP_GRACE_S):
                    log.error(
                        "rl: the training did not stop %.0f s after the server did: stopping it", STOP_GRACE_S
                    )
                    signal.pthread_kill(main.ident, signal.SIGUSR1)  # subprocess.call kills torchrun
                return

        threading.Thread(target=run, name="ssp vLLM server watch", daemon=True).start()

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after ``STOP_GRACE_S``; nothing stays
        (also when a second Ctrl-C interrupts the wait)."""
        self._done.set()
        if self._previous_handler is not None:
            signal.signal(signal.SIGUSR1, self._previous_handler)
            self._previous_handler = None
        pgid = self.proc.pid  # start_new_session: the server leads its own group
        try:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                log.warning("rl: the vLLM server did not stop in %.0f s; killed", STOP_GRACE_S)
        finally:
            with contextlib.suppress(ProcessLookupError):  # children (engine core, workers) left behind
                os.killpg(pgid, signal.SIGKILL)
            self.proc.wait()
            self._log.close()


class ServerLost(Exception):
    """Raised in the launcher's main thread when the watch stopped a server the training outlived."""


def _raise_server_lost(signum, frame):
    raise ServerLost("the vLLM server was stopped by its watch")


@contextlib.contextmanager
def running(server: Server):
    """The server, healthy and watched, for the duration of the block; stopped however the block
    ends. When the watch stopped the server (it exited or went silent) and the block then raised
    (the interrupt that stops a training stuck without it), the error says so. A block that returns
    returns: torchrun's exit code tells whether the training got through, the log says why not."""
    try:
        server.wait_healthy()
        server.watch()
        try:
            yield server
        except (Exception, KeyboardInterrupt) as err:
            if server.failure:
                raise StageError(server.failure) from err
            raise
    finally:
        server.stop()


def _check_port_free(port: int) -> None:
    """Another server already on the port would answer our health check, and ours would fail."""
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise StageError(
                f"rl.rollout.server_port={port} is taken on this node (a server left running, or another "
                "job's): stop it or pick another port"
            ) from None


def rollout_server(recipe: Recipe, model: str, server_gpus: list[str], log_file: Path) -> Server:
    """Start ``trl vllm-serve`` for ``model`` on ``server_gpus`` (not yet waited for)."""
    r = recipe.rl.rollout
    _check_port_free(r.server_port)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(server_gpus)}
    url = f"http://127.0.0.1:{r.server_port}/health"  # on this node
    cmd = server_command(recipe, model, len(server_gpus))
    log.info(
        "rl: starting the vLLM server on GPUs %s: %s (log %s)",
        ",".join(server_gpus),
        " ".join(cmd[1:]),
        log_file,
    )
    return Server(cmd, url, log_file, env, r.server_timeout)
