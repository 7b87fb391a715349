"""The sandbox's spawner (reward/spawner.py): programs start from a small process of their own,
never from the caller (whose fork copies a trainer's or an engine's page tables); when the spawner
dies the call says so and the next one gets a new spawner; a forked child gets its own; the
spawner ends with its caller."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ssp.reward import get_reward, spawner
from ssp.reward.sandbox import Limits, isolation, run_python
from ssp.reward.spawner import SpawnerError

ROOT = Path(__file__).resolve().parents[1]
needs_bwrap = pytest.mark.skipif(
    not isolation()["bubblewrap"], reason="bubblewrap (bwrap) is not usable here"
)
FAST = Limits(wall_seconds=5, cpu_seconds=5, memory_mb=512)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@needs_bwrap
def test_programs_are_started_by_the_spawner_not_by_the_caller(monkeypatch):
    """The caller's own way of starting a process is broken on purpose: code_tests still scores,
    because every program is started in the spawner (and broken that way it would fail: checked
    with ``here=True``)."""

    def refuse(*args, **kwargs):
        raise AssertionError("a program was started by forking the calling process")

    monkeypatch.setattr(spawner, "spawn_here", refuse)
    reward = get_reward("code_tests", max_concurrency=2, test_seconds=2)
    tests = '[{"input": "2\\n", "output": "4\\n"}]'
    assert reward(["```python\nprint(int(input()) * 2)\n```"] * 3, tests=[tests] * 3) == [1.0] * 3
    with pytest.raises(AssertionError, match="forking the calling process"):
        spawner.spawn(["true"], {}, "/", "", FAST, True, os.geteuid(), here=True)


@needs_bwrap
def test_a_spawner_that_dies_fails_the_call_and_the_next_call_gets_a_new_one():
    """SIGKILL the spawner while a program runs in it: that call raises (an error, counted by
    code_tests as one, never a score) within moments, not at the program's timeout; its program is
    gone (bubblewrap dies with its parent); the next call starts a new spawner and runs."""
    first = spawner.started()
    outcome: dict = {}

    def slow():
        start = time.monotonic()
        try:
            outcome["result"] = run_python("import time\nprint('up', flush=True)\ntime.sleep(30)", "", FAST)
        except SpawnerError as err:
            outcome["error"] = str(err)
        outcome["seconds"] = time.monotonic() - start

    thread = threading.Thread(target=slow, daemon=True)
    thread.start()
    time.sleep(1.0)  # the program is running
    programs = _children(first)
    assert programs, "no program was running under the spawner"
    os.kill(first, signal.SIGKILL)
    thread.join(10)
    assert "error" in outcome, f"the call returned {outcome.get('result')} from a dead spawner"
    assert f"sandbox spawner (pid {first}) failed" in outcome["error"]
    assert outcome["seconds"] < 4, "the call waited for the program's timeout"
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in programs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in programs), "a program outlived its spawner"
    assert run_python("print(6 * 7)", "", FAST).stdout == "42\n"
    assert spawner.started() != first


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (the spawner's bubblewrap instances)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except OSError:
                continue
    return found


@needs_bwrap
def test_a_forked_child_starts_its_own_spawner():
    """The parent's spawner pipes are not the child's to use (its answers would go to the parent's
    reader thread, which the child does not have)."""
    parent = spawner.started()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: score, report its spawner's pid
        signal.alarm(20)  # were it to wait on the parent's spawner, it would wait forever
        try:
            ok = run_python("print(1)", "", FAST).stdout == "1\n"
            os.write(write, f"{ok} {spawner.started()}".encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    ok, child = os.read(read, 100).decode().split()
    os.close(read)
    assert ok == "True"
    assert int(child) != parent


def test_the_spawner_ends_with_its_caller():
    """A caller killed outright (no close, no atexit) leaves no spawner behind."""
    code = (
        "import sys, time\nfrom ssp.reward import spawner\n"
        "print(spawner.started(), flush=True)\ntime.sleep(60)"
    )
    caller = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        pid = int(caller.stdout.readline())
        assert _alive(pid)
    finally:
        caller.kill()
        caller.wait()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the spawner outlived its caller"


@needs_bwrap
def test_a_program_echoing_an_input_larger_than_the_pipe_finishes():
    """The input was written whole before any output was read: a correct program copying 300 KB
    from stdin to stdout blocked on its full stdout pipe while the spawner blocked on the program's
    full stdin, neither using CPU, past every limit (a review found it: stuck at 20 s with a 3 s wall
    limit). stdin is now fed by the loop that reads."""
    text = "".join(f"{i} {'x' * 90}\n" for i in range(3000))  # ~300 KB, 4.6 pipes' worth
    echo = "import sys\nfor line in sys.stdin:\n    sys.stdout.write(line)"
    start = time.monotonic()
    result = run_python(echo, text, Limits(wall_seconds=10, cpu_seconds=10, memory_mb=512))
    assert (result.status, len(result.stdout)) == ("ok", len(text)), result.stderr[-500:]
    assert result.stdout == text and time.monotonic() - start < 8
