"""A sampling engine process that goes silent must not hang the stage (issue 29).

Real processes, as a GPU node runs them (only CUDA_VISIBLE_DEVICES differs): two engine processes
of ``sampling/data_parallel.py`` on the scripted model, one stopped with SIGSTOP as it is handed a
shard. A stopped process sends nothing, not even the heartbeat of its thread, so after
``generation.engine_timeout_s`` it is killed and its shard sampled by the other engine: the call
returns every sample, identical to one engine's (shard k's seed is fixed by k). When the last engine
stops too, the call fails within the limit with an error naming it. Before the fix the call waited
forever: the calls run in a thread here, joined with a timeout, so that a hang fails the test instead
of the suite.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest

from ssp.sampling.data_parallel import EngineHung, ShardedGenerator
from ssp.sampling.generation import GenerationConfig, SamplingParams

from .helpers.scripted_model import build_scripted_model

LIMIT_S = 3.0  # generation.engine_timeout_s here: heartbeats every 0.3 s (loading: seconds of them)
GUARD_S = 40.0  # a call still waiting after this long hangs (before the fix: forever)


def _stop_on_next_shard(engine) -> None:
    """SIGSTOP ``engine``'s process as it is handed its next shard, mid-call (the request then waits
    in the pipe: to the caller, an engine that stopped while sampling looks the same)."""
    original = engine.generate

    def stopped(prompts, params, desc):
        os.kill(engine.proc.pid, signal.SIGSTOP)
        return original(prompts, params, desc)

    engine.generate = stopped


def _call(gen: ShardedGenerator, fn):
    """``fn()`` in a thread, joined with GUARD_S: (value or raised error, seconds). A call still
    waiting then fails the test, after SIGKILL to the engines has released it."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as err:  # noqa: BLE001 - handed to the test
            box["value"] = err

    start = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(GUARD_S)
    if thread.is_alive():
        for engine in list(gen.engines):
            os.kill(engine.proc.pid, signal.SIGKILL)
        thread.join(30)
        pytest.fail(f"the call still waited after {GUARD_S:.0f} s on a stopped engine: the stage hangs")
    return box["value"], time.monotonic() - start


@pytest.mark.slow
def test_a_stopped_engine_is_killed_and_its_shard_sampled_by_another(tmp_path, caplog):
    model = build_scripted_model(tmp_path / "m", p=0.5)
    prompts = [[{"role": "user", "content": f"Question {i}."}] for i in range(8)]
    params = SamplingParams(n=4, temperature=1.0, max_new_tokens=4, seed=5)
    one = ShardedGenerator(model, GenerationConfig(shard_prompts=1))  # one engine, in this process
    try:
        expected = one.generate(prompts, params)
    finally:
        one.close()

    cfg = GenerationConfig(data_parallel=2, shard_prompts=1, engine_timeout_s=LIMIT_S)
    gen = ShardedGenerator(model, cfg)
    try:
        first, second = gen.engines
        # loading (torch and the model) took longer than the limit: the heartbeats kept them alive
        assert first.beats > 0 and second.beats > 0, (first.beats, second.beats)

        _stop_on_next_shard(second)
        with caplog.at_level("WARNING", logger="ssp"):
            out, took = _call(gen, lambda: gen.generate(prompts, params))
        assert not isinstance(out, BaseException), out
        assert out == expected  # every sample, the stopped engine's shard sampled by the other
        assert LIMIT_S <= took < LIMIT_S + 10, took
        assert gen.engines == [first] and second.proc.returncode == -signal.SIGKILL
        warning = (
            rf"engine 1 \(CPU; pid {second.proc.pid}\) sent nothing, not even a heartbeat, and ran nothing for [34] s "
            r"during 'generate' \(sampling shard \d/8\) \(generation.engine_timeout_s=3\): hung .*; "
            r"killed; shard \d/8 goes on with the engines left: engine 0 \(CPU\)"
        )
        assert any(r.levelname == "WARNING" for r in caplog.records)
        assert re.search(warning, caplog.text), caplog.text

        _stop_on_next_shard(first)  # the last engine: nobody to take over
        err, took = _call(gen, lambda: gen.generate(prompts, params))
        assert isinstance(err, EngineHung), err
        assert LIMIT_S <= took < LIMIT_S + 10, took
        message = str(err)
        assert f"engine 0 (CPU; pid {first.proc.pid}) sent nothing" in message, message
        assert "generation.engine_timeout_s=3" in message and "no engine is left to sample shard" in message
        assert "\n" not in message
        assert first.proc.returncode == -signal.SIGKILL and gen.engines == []
    finally:
        gen.close()


LAUNCHER = """
import os, signal, subprocess, sys, time
from pathlib import Path
from ssp.core.errors import StageError
from ssp.stages import rollout_server
from ssp.stages.rollout_server import Server, running

signal.signal(signal.SIGINT, signal.SIG_IGN)  # as under `nohup ssp run ... &`: the watch must not need it
rollout_server.STOP_GRACE_S = 1.0  # for the training to stop on its own
port, tmp = int(sys.argv[1]), Path(sys.argv[2])
cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp / "site")]
server = Server(cmd, f"http://127.0.0.1:{port}/health", tmp / "server.log", dict(os.environ), 2.0)
try:
    with running(server):
        os.killpg(server.proc.pid, signal.SIGSTOP)
        started = time.monotonic()
        subprocess.call(["sleep", "60"])  # returns after 60 s unless the watch stops it
    print("no error")
except StageError as err:
    print(f"took {time.monotonic() - started:.1f}")
    print(f"code {server.proc.returncode}")
    print(err)
"""


@pytest.mark.slow
def test_a_rollout_server_that_stops_answering_mid_training_stops_the_stage(tmp_path):
    """RL's vLLM server (``stages/rollout_server.py``), with the stand-in of tests/test_cluster.py
    (Python's http.server serving a file named ``health``), frozen with SIGSTOP once the training
    runs; the training, a ``sleep``, stands for one stuck in a weight sync that will never end. The
    watch kills the server after ``rl.rollout.server_timeout`` without an answer, then interrupts
    the launcher, whose ``subprocess.call`` kills the training: a StageError, not a hang. The
    launcher is a process of its own, as ``ssp`` is: the watch interrupts the main thread, which a
    pytest-xdist worker does not run tests in."""
    import socket
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "health").write_text("ok")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(port), str(tmp_path)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = out.stdout.splitlines()
    assert lines and lines[0].startswith("took "), (out.stdout, out.stderr[-2000:])
    assert 2.0 <= float(lines[0].split()[1]) < 15, lines[0]
    assert lines[1] == f"code {-signal.SIGKILL}"
    assert re.match(
        rf"the vLLM server did not answer at http://127.0.0.1:{port}/health for [23] s during training "
        r"\(rl.rollout.server_timeout=2\): hung or stopped; killed; its log .*server.log ends:",
        lines[2],
    ), lines[2]
