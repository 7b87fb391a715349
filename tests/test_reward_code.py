"""code_tests and its sandbox: both LiveCodeBench test styles, hostile programs, nothing leaks."""

import glob
import json
import os
import tempfile
import time

import pytest

from reward import get_reward
from reward.code_tests import extract_program
from reward.sandbox import NOBODY, Limits, isolation, live_processes, run_python

ISO = isolation()
needs_bwrap = pytest.mark.skipif(not ISO["bubblewrap"], reason="bubblewrap (bwrap) is not usable here")
needs_no_network = pytest.mark.skipif(not ISO["no_network"], reason="no network namespace available")

FAST = Limits(wall_seconds=3, cpu_seconds=3, memory_mb=512)


def _nobody_pids() -> list[int]:
    """Live processes running as uid 65534 on the host (sandboxed programs, bubblewrap included)."""
    return live_processes(uid=NOBODY)


def _sandbox_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "ssp-sandbox-*")))


@pytest.fixture
def no_leaks():
    """Whatever the program did, nothing of it survives the call."""
    fds, dirs = len(os.listdir("/proc/self/fd")), _sandbox_dirs()
    yield
    time.sleep(0.2)  # let the kernel reap
    assert _nobody_pids() == [], "a sandboxed process survived"
    assert _sandbox_dirs() == dirs, "a sandbox directory was left behind"
    assert len(os.listdir("/proc/self/fd")) == fds, "file descriptors leaked"


HOSTILE = [
    ("sleeps forever", "import time\ntime.sleep(10**6)", {"timeout"}),
    (
        "forks repeatedly",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        {"timeout", "killed", "error"},
    ),
    ("allocates without bound", "x = []\nwhile True:\n    x.append(bytearray(10**7))", {"error", "killed"}),
    ("prints gigabytes", "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", {"output_limit"}),
    ("burns CPU", "while True:\n    pass", {"timeout", "killed"}),
    (
        "signals its parent",
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.killpg(0, signal.SIGKILL)",
        {"ok", "killed", "error"},
    ),
    ("kills everything it can", "import os, signal\nos.kill(-1, signal.SIGKILL)", {"ok", "killed", "error"}),
    ("a huge file", "open('big', 'wb').write(b'x' * (64 << 20))", {"error", "killed"}),
]


@pytest.mark.parametrize("name, source, statuses", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_programs_end_with_a_defined_status(no_leaks, name, source, statuses):
    start = time.monotonic()
    result = run_python(source, "", FAST)
    assert result.status in statuses, (name, result)
    assert time.monotonic() - start < FAST.wall_seconds + 2
    assert len(result.stdout) <= FAST.output_bytes


def test_environment_is_scrubbed(no_leaks, monkeypatch):
    monkeypatch.setenv("SSP_TEST_SECRET", "hunter2")
    result = run_python("import os, json\nprint(json.dumps(dict(os.environ)))", "", FAST)
    env = json.loads(result.stdout)
    assert "SSP_TEST_SECRET" not in env and "hunter2" not in result.stdout
    assert set(env) <= {"PATH", "LANG", "HOME", "PWD"}


@needs_no_network
def test_no_network(no_leaks):
    src = (
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 22), timeout=2)\n    print('open')\n"
        "except OSError as e:\n    print('blocked', e.errno)\n"
    )
    result = run_python(src, "", FAST)
    assert result.stdout.startswith("blocked"), result
    src = "import socket\nprint(sorted(n for _, n in socket.if_nameindex()))"
    assert run_python(src, "", FAST).stdout.strip() in ("['lo']", "[]")


@needs_bwrap
def test_writes_outside_the_work_directory_fail_or_vanish(no_leaks, tmp_path):
    target = tmp_path / "escaped"
    os.chmod(tmp_path, 0o777)
    src = (
        f"import os\nfor p in ['/etc/ssp_evil', '{target}', '/tmp/ssp_evil', 'inside']:\n"
        f"    try:\n        open(p, 'w').write('x')\n        print('wrote', p)\n"
        f"    except OSError as e:\n        print('refused', p, e.errno)\n"
    )
    result = run_python(src, "", FAST)
    assert "refused /etc/ssp_evil" in result.stdout and f"refused {target}" in result.stdout
    assert "wrote inside" in result.stdout
    assert not os.path.exists("/etc/ssp_evil") and not target.exists()
    assert not os.path.exists("/tmp/ssp_evil"), "the sandbox's /tmp must be private"


@needs_bwrap
def test_runs_as_an_unprivileged_user(no_leaks):
    assert run_python("import os\nprint(os.getuid())", "", FAST).stdout.strip() == str(NOBODY)


# ------------------------------------------------------------------ code_tests
ADD = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
STDIN_TESTS = [
    {"testtype": "stdin", "input": "1 2\n", "output": "3\n"},
    {"testtype": "stdin", "input": "5 5", "output": "10"},
]
FUNCTIONAL = (
    "```python\nclass Solution:\n    def twoSum(self, nums, target):\n"
    "        seen = {}\n        for i, x in enumerate(nums):\n"
    "            if target - x in seen:\n                return [seen[target - x], i]\n"
    "            seen[x] = i\n```"
)
FUNC_TESTS = json.dumps(
    [
        {"testtype": "functional", "input": "[2, 7, 11, 15]\n9", "output": "[0, 1]"},
        {"testtype": "functional", "input": "[3, 2, 4]\n6", "output": "[1, 2]"},
    ]
)


def test_both_test_styles(no_leaks):
    reward = get_reward("code_tests")
    wrong = ADD.replace("a + b", "a * b")  # passes 1 2 -> 2? no: 2 != 3; 5 5 -> 25 != 10
    plain_function = "```python\ndef twoSum(nums, target):\n    return [0, 1]\n```"
    scores = reward(
        [ADD, wrong, FUNCTIONAL, plain_function],
        tests=[STDIN_TESTS, STDIN_TESTS, FUNC_TESTS, FUNC_TESTS],
        fn_name=[None, None, "twoSum", "twoSum"],
    )
    assert scores == [1.0, 0.0, 1.0, 0.0]


def test_partial_credit_and_chat_completions(no_leaks):
    reward = get_reward("code_tests", partial=True)
    half = "```python\nprint(3)\n```"  # right for the first test only
    chat = [{"role": "assistant", "content": ADD}]
    assert reward([half, chat], tests=[STDIN_TESTS, STDIN_TESTS]) == [0.5, 1.0]


def test_missing_program_and_malformed_tests(no_leaks):
    reward = get_reward("code_tests")
    assert reward(["I would use a hash map."], tests=[STDIN_TESTS]) == [0.0]
    assert reward([ADD, ADD, ADD], tests=["not json", [], [{"input": "1"}]]) == [None, None, None]
    with pytest.raises(KeyError, match="needs the dataset column 'tests'"):
        reward([ADD], test_cases=[STDIN_TESTS])


def test_total_time_budget_bounds_a_completion(no_leaks):
    reward = get_reward("code_tests", test_seconds=2, total_seconds=3, partial=True)
    slow = "```python\nimport time\ntime.sleep(10)\n```"
    start = time.monotonic()
    assert reward([slow], tests=[STDIN_TESTS * 3]) == [0.0]
    assert time.monotonic() - start < 3 + 2


def test_extract_program_takes_the_last_python_block():
    text = "```python\nprint(1)\n```\nbetter:\n```py\nprint(2)\n```\n```text\nout\n```"
    assert extract_program(text) == "print(2)\n"
    assert extract_program("no code") is None
