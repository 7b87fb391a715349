"""code_tests and its sandbox: both LiveCodeBench test styles, hostile programs, nothing leaks.

The leak checks look only at this test's own traces (its sandbox folder, processes carrying its
own tag), so they hold with other tests running at the same time (``pytest -n auto``)."""

import itertools
import json
import os
import tempfile
import time

import pytest

from reward import get_reward
from reward.code_tests import LCB_PRELUDE, extract_program, stdout_matches, with_prelude
from reward.outcome import RewardError
from reward.sandbox import NOBODY, Limits, isolation, run_python

ISO = isolation()
needs_bwrap = pytest.mark.skipif(not ISO["bubblewrap"], reason="bubblewrap (bwrap) is not usable here")
needs_no_network = pytest.mark.skipif(not ISO["no_network"], reason="no network namespace available")

FAST = Limits(wall_seconds=3, cpu_seconds=3, memory_mb=512)


_TAGS = itertools.count()


def _tagged_pids(tag: str) -> list[int]:
    """Live processes whose name (``comm``, inherited across fork) is ``tag``."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if name == tag and state != "Z":
            pids.append(int(entry))
    return pids


class Tagged:
    """A per-test name for sandboxed programs: ``tag(source)`` renames the program's process (and so
    everything it forks) to it, so the test can find exactly its own survivors."""

    def __init__(self):
        self.name = f"ssp{os.getpid() % 100000}t{next(_TAGS)}"[:15]

    def __call__(self, source: str) -> str:
        prologue = (
            f"import ctypes as _c\n_c.CDLL(None).prctl(15, {self.name.encode()!r}, 0, 0, 0)  # PR_SET_NAME\n"
        )
        return prologue + source


@pytest.fixture
def no_leaks(monkeypatch, tmp_path_factory):
    """Whatever the program did, nothing of it survives the call: no process with this test's tag,
    no folder in this test's own sandbox root, no file descriptor."""
    tmp_path_factory.getbasetemp()  # pytest's own temporary folders stay where they are
    root = tempfile.mkdtemp(prefix="ssp-test-sandbox-")
    os.chmod(root, 0o711)  # uid 65534 may enter its own folder inside, nothing more
    monkeypatch.setattr(tempfile, "tempdir", root)
    fds, tag = len(os.listdir("/proc/self/fd")), Tagged()
    yield tag
    time.sleep(0.2)  # let the kernel reap
    survivors = _tagged_pids(tag.name)
    left = os.listdir(root)
    os.rmdir(root) if not left else None
    assert survivors == [], f"a sandboxed process survived: {survivors}"
    assert left == [], f"a sandbox directory was left behind: {left}"
    assert len(os.listdir("/proc/self/fd")) == fds, "file descriptors leaked"


# (name, program, its one status, what its stderr says): each is deterministic in the sandbox.
HOSTILE = [
    ("sleeps forever", "import time\ntime.sleep(10**6)", "timeout", ""),
    (
        "forks repeatedly",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        "timeout",
        "",
    ),
    (
        "allocates without bound",
        "x = []\nwhile True:\n    x.append(bytearray(10**7))",
        "error",
        "MemoryError",
    ),
    ("prints gigabytes", "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", "output_limit", ""),
    ("burns CPU", "while True:\n    pass", "timeout", ""),
    # its parent is the PID namespace's init, which ignores it; then its own group dies
    (
        "signals its parent",
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.killpg(0, signal.SIGKILL)",
        "killed",
        "",
    ),
    # nothing else is visible to it
    (
        "kills everything it can",
        "import os, signal\nos.kill(-1, signal.SIGKILL)",
        "error",
        "ProcessLookupError",
    ),
    ("a huge file", "open('big', 'wb').write(b'x' * (64 << 20))", "error", "File too large"),
]


@pytest.mark.parametrize("name, source, status, stderr", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_programs_end_with_their_status(no_leaks, name, source, status, stderr):
    start = time.monotonic()
    result = run_python(no_leaks(source), "", FAST)
    assert result.status == status and stderr in result.stderr, (name, result)
    assert time.monotonic() - start < FAST.wall_seconds + 2
    assert len(result.stdout) <= FAST.output_bytes


def test_environment_is_scrubbed(no_leaks, monkeypatch):
    monkeypatch.setenv("SSP_TEST_SECRET", "hunter2")
    result = run_python("import os, json\nprint(json.dumps(dict(os.environ)))", "", FAST)
    env = json.loads(result.stdout)
    assert "SSP_TEST_SECRET" not in env and "hunter2" not in result.stdout
    assert set(env) <= {"PATH", "LANG", "HOME", "PWD"}


def test_the_network_has_no_interface_up(no_leaks):
    """Reaching a listener is tested in test_sandbox_attacks.py (it listens itself); here: the only
    interface is a loopback that is down."""
    src = "import socket\nprint(sorted(n for _, n in socket.if_nameindex()))"
    assert run_python(src, "", FAST).stdout.strip() == "['lo']"


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
    # tests the reward cannot run are unscorable, not a wrong answer: no function name, or an
    # expected value that is not JSON
    no_name = [{"testtype": "functional", "input": "[1]", "output": "1"}]
    not_json = [{"testtype": "functional", "input": "[1]", "output": "one"}]
    scores = reward([FUNCTIONAL, FUNCTIONAL], tests=[no_name, not_json], fn_name=[None, "twoSum"])
    assert scores == [None, None] and reward.last.statuses == ["unscorable", "unscorable"]
    with pytest.raises(KeyError, match="needs the dataset column 'tests'"):
        reward([ADD], test_cases=[STDIN_TESTS])


def test_total_time_budget_bounds_a_completion(no_leaks):
    reward = get_reward("code_tests", test_seconds=2, total_seconds=3, partial=True)
    slow = "```python\nimport time\ntime.sleep(10)\n```"
    start = time.monotonic()
    assert reward([slow], tests=[STDIN_TESTS * 3]) == [0.0]
    assert time.monotonic() - start < 3 + 2


# A LiveCodeBench functional solution written like its starter code: `List` from typing, no import.
STARTER_STYLE = (
    "```python\nclass Solution:\n    def maxSum(self, nums: List[int], k: int) -> int:\n"
    "        best = -inf\n        for i in range(len(nums) - k + 1):\n"
    "            best = max(best, sum(nums[i:i + k]))\n        return best\n```"
)
STARTER_TESTS = [
    {"testtype": "functional", "input": "[1, 5, 2, 6]\n2", "output": "8"},
    {"testtype": "functional", "input": "[3]\n1", "output": "3"},
]
# stdin solutions using the runner's implicit imports (deque, gcd) and printing floats LCB compares as numbers
STDIN_IMPLICIT = "```python\nq = deque(map(int, input().split()))\nprint(gcd(q[0], q[1]), 2.50)\n```"
STDIN_IMPLICIT_TESTS = [{"testtype": "stdin", "input": "12 18\n", "output": " 6 2.5 \n\n"}]


def test_solutions_run_with_the_livecodebench_runners_implicit_imports(no_leaks):
    reward = get_reward("code_tests")
    scores = reward(
        [STARTER_STYLE, STDIN_IMPLICIT, STARTER_STYLE.replace("k + 1", "k")],
        tests=[STARTER_TESTS, STDIN_IMPLICIT_TESTS, STARTER_TESTS],
        fn_name=["maxSum", "", "maxSum"],
    )
    assert scores == [1.0, 1.0, 0.0]  # the third misses the last window: a wrong answer, still scored


def test_prelude_keeps_future_imports_first():
    program = "from __future__ import annotations\nprint(1)\n"
    text = with_prelude(program)
    assert text.startswith("from __future__ import annotations\n" + LCB_PRELUDE)
    compile(text, "main.py", "exec")  # a __future__ import after other code would not compile


@pytest.mark.parametrize(
    "got, expected, same",
    [
        ("3\n", "3", True),
        ("  3  \n 4\n\n", "3\n4", True),  # each line stripped, as LiveCodeBench does
        ("2.50", "2.5", True),  # numbers compare as decimals
        ("1 2", "1  2", True),
        ("3", "4", False),
        ("3\n4", "3", False),
        ("abc", "abd", False),
    ],
)
def test_stdout_comparison_is_livecodebenchs(got, expected, same):
    assert stdout_matches(got, expected) is same


def test_a_sandbox_that_cannot_start_stops_the_reward(monkeypatch):
    """The failure seen as root without bubblewrap: the program could not even be started
    (PermissionError on the interpreter). A test double stands in for that broken machine; what is
    under test is that the reward reports it instead of scoring 0.0."""

    def cannot_start(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/work/.venv/bin/python")

    monkeypatch.setattr("reward.code_tests.run_python", cannot_start)
    reward = get_reward("code_tests")
    with pytest.raises(
        RewardError,
        match=r"reward code_tests: 2 of 2 items failed \(0 timed out, 2 errored\).*Permission denied",
    ):
        reward([ADD, ADD], tests=[STDIN_TESTS, STDIN_TESTS])


def test_extract_program_takes_the_last_python_block():
    text = "```python\nprint(1)\n```\nbetter:\n```py\nprint(2)\n```\n```text\nout\n```"
    assert extract_program(text) == "print(2)\n"
    assert extract_program("no code") is None


def test_implicit_imports_can_be_turned_off(no_leaks):
    bare = get_reward("code_tests", implicit_imports=False)
    assert bare([STARTER_STYLE], tests=[STARTER_TESTS], fn_name=["maxSum"]) == [0.0]  # NameError: List
