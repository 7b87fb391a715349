"""code_tests and its sandbox: both LiveCodeBench test styles, hostile programs, nothing leaks.

The leak checks look only at this test's own traces (its sandbox folder, processes carrying its
own tag), so they hold with other tests running at the same time (``pytest -n auto``)."""

import itertools
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ssp.reward import get_reward
from ssp.reward.code_tests import LCB_COMMIT, LCB_PRELUDE, extract_program, stdout_matches, with_prelude
from ssp.reward.outcome import RewardError
from ssp.reward.sandbox import NOBODY, Limits, isolation, run_python

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
    from ssp.reward import spawner

    spawner_fds = f"/proc/{spawner.started()}/fd"  # programs start there (reward/spawner.py)
    fds, their_fds, tag = len(os.listdir("/proc/self/fd")), len(os.listdir(spawner_fds)), Tagged()
    yield tag
    time.sleep(0.2)  # let the kernel reap
    survivors = _tagged_pids(tag.name)
    left = os.listdir(root)
    os.rmdir(root) if not left else None
    assert survivors == [], f"a sandboxed process survived: {survivors}"
    assert left == [], f"a sandbox directory was left behind: {left}"
    assert len(os.listdir("/proc/self/fd")) == fds, "file descriptors leaked"
    assert len(os.listdir(spawner_fds)) == their_fds, "file descriptors leaked in the spawner"


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


@pytest.mark.slow
@pytest.mark.parametrize("name, source, status, stderr", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_programs_end_with_their_status(no_leaks, name, source, status, stderr):
    start = time.monotonic()
    result = run_python(no_leaks(source), "", FAST)
    assert result.status == status and stderr in result.stderr, (name, result)
    assert time.monotonic() - start < FAST.wall_seconds + 2
    assert len(result.stdout) <= FAST.output_bytes


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="only root callers can give each program its own uid")
def test_a_fork_bomb_does_not_hold_up_the_programs_beside_it(no_leaks):
    """RLIMIT_NPROC counts per uid: with one uid shared by every program, a completion that forks
    without end kept each program graded beside it from starting until the bomb was killed (a
    ``print`` took 2.1 s instead of 0.1 s, a 3 s timeout 5.1 s). Each program has a uid of its own."""
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(run_python, no_leaks(bomb), "", FAST)
        time.sleep(1.0)  # the bomb has filled its process count by now
        start = time.monotonic()
        beside = run_python(no_leaks("import os\nprint(os.getuid())"), "", FAST)
        took = time.monotonic() - start
        assert running.result().status == "timeout"
    assert beside.status == "ok" and beside.stdout.strip() == str(NOBODY), beside
    assert took < 1.0, f"a one-line program beside a fork bomb took {took:.2f} s"


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


@pytest.mark.slow
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
        # floats: exact Decimal equality per token, no tolerance (testing_util.py lines 398-422)
        ("0.30000000000000004", "0.3", False),
        ("1e3 -0 2.50", "1000 0 2.5", True),
        ("0.1", "0.1000001", False),
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

    monkeypatch.setattr("ssp.reward.code_tests.run_python", cannot_start)
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


# ------------------------------------------------------------ parity with LiveCodeBench's runner
# The runner: LiveCodeBench/LiveCodeBench, lcb_runner/evaluation/testing_util.py at LCB_COMMIT
# (line numbers below are that file's) and compute_code_generation_metrics.py. Each test scores
# small programs under the default harness ("lcb", the runner reproduced) and under "script"
# (plain python3), one row of docs/rewards.md's table each.
ONE = [{"testtype": "stdin", "input": "1 2\n", "output": "3\n"}]
SUM = [{"testtype": "stdin", "input": "1 2\n3\n", "output": "6\n"}]  # two lines: 1 + 2 + 3


def _scores(programs: list[str], tests, fn_name=None, **options) -> dict[str, list]:
    """{"lcb": scores, "script": scores} of bare programs, each against ``tests``."""
    completions = [f"```python\n{p}\n```" for p in programs]

    def score(harness: str) -> list:
        reward = get_reward("code_tests", harness=harness, **options)
        return reward(completions, tests=[tests] * len(programs), fn_name=[fn_name] * len(programs))

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(("lcb", "script"), pool.map(score, ("lcb", "script")), strict=True))


def _expect(rows):
    """(programs, {"lcb": [...], "script": [...]}) from rows of (program, lcb score, script score)."""
    return [r[0] for r in rows], {"lcb": [r[1] for r in rows], "script": [r[2] for r in rows]}


def test_the_runner_read_is_recorded():
    assert len(LCB_COMMIT) == 40 and get_reward("code_tests").harness == "lcb"
    with pytest.raises(ValueError, match="harness must be 'lcb' or 'script'"):
        get_reward("code_tests", harness="livecodebench")


def test_output_a_thread_prints_after_the_call_is_lost_as_in_the_runner(no_leaks):
    """grade_stdio (lines 338-370) captures stdout only while call_method runs the wrapped
    program: a thread still running when it returns prints to the runner's own stdout, and the
    test sees no output. `harness: script` keeps it (the interpreter waits for the thread)."""
    late = (
        "import threading, time\ndef main():\n    time.sleep(0.3)\n    a, b = map(int, input().split())\n"
        "    print(a + b)\nthreading.Thread(target=main).start()"
    )
    joined = late.replace(
        "threading.Thread(target=main).start()", "t = threading.Thread(target=main)\nt.start()\nt.join()"
    )
    programs, expected = _expect([(late, 0.0, 1.0), (joined, 1.0, 1.0)])
    assert _scores(programs, ONE) == expected


def test_the_time_limit_is_the_runners_alarm_around_the_call(no_leaks):
    """Per test, signal.alarm(timeout) around the call (lines 334-368); its handler prints a line
    and raises TimeoutException (lines 51-53), which a program can catch and go on printing."""
    catches = "import time\ntry:\n    time.sleep(5)\nexcept Exception as e:\n    print(type(e).__name__)"
    sleeps = "import time\ntime.sleep(5)\nprint(3)"
    tests = [
        {"testtype": "stdin", "input": "", "output": "timeout occured: alarm went off\nTimeoutException"}
    ]
    start = time.monotonic()
    assert _scores([catches, sleeps], tests, test_seconds=0.5) == {"lcb": [1.0, 0.0], "script": [0.0, 0.0]}
    assert time.monotonic() - start < 0.5 + 2  # the alarm (lcb) or the wall clock (script), not 5 s


def test_the_overall_limit_is_the_runners_global_timeout():
    """check_correctness: p.join(timeout=(timeout + 1) * len(inputs) + 5), then all tests fail."""
    assert get_reward("code_tests").budget(10) == (6 + 1) * 10 + 5
    assert get_reward("code_tests", test_seconds=2).budget(3) == 14
    assert get_reward("code_tests", total_seconds=60).budget(100) == 60


def test_functional_results_compare_as_the_runners_equality(no_leaks):
    """grade_call_based (lines 259-268): a returned tuple becomes a list, then prediction == the
    JSON output: a tuple *inside* the result is not a list, floats compare exactly."""
    base = "class Solution:\n    def f(self, a):\n        return {}"
    tests = [{"testtype": "functional", "input": "1", "output": "[[1, 1]]"}]
    programs, expected = _expect(
        [
            (base.format("[[a, a]]"), 1.0, 1.0),
            (base.format("([a, a],)"), 1.0, 1.0),
            (base.format("[(a, a)]"), 0.0, 1.0),
        ]
    )
    assert _scores(programs, tests, fn_name="f") == expected
    floats = [{"testtype": "functional", "input": "1", "output": "0.3"}]
    assert _scores([base.format("0.1 + 0.2"), base.format("0.3 * a")], floats, fn_name="f") == {
        "lcb": [0.0, 1.0],
        "script": [0.0, 1.0],
    }


def test_the_recursion_limit_is_the_preludes_50000(no_leaks):
    """import_string (line 27) ends with sys.setrecursionlimit(50000), for both test styles."""
    deep = "def f(n):\n    return 0 if n == 0 else 1 + f(n - 1)\nprint(f(20000) - 19997)"
    assert _scores([deep], ONE) == {"lcb": [1.0], "script": [1.0]}
    assert _scores([deep], ONE, implicit_imports=False) == {"lcb": [0.0], "script": [0.0]}  # 1000


@pytest.mark.slow
def test_stdin_forms_behave_as_under_the_runners_patches(no_leaks):
    """call_method (lines 154-181) patches sys.stdin with MockStdinWithBuffer (lines 74-103), after
    replacing read/readline/readlines of the real sys.stdin, which the prelude's `from sys import *`
    bound; the prelude's `from builtins import *` binds the real open, on an empty fd 0."""
    rows = [
        ("a, b = map(int, input().split())\nprint(a + b + int(input()))", 1.0, 1.0),
        ("import sys\nprint(sum(map(int, sys.stdin.read().split())))", 1.0, 1.0),
        (
            "import sys\na, b = map(int, sys.stdin.readline().split())\nprint(a + b + int(sys.stdin.readline()))",
            1.0,
            1.0,
        ),
        ("import sys\nprint(sum(map(int, sys.stdin.buffer.read().split())))", 1.0, 1.0),
        (
            "import sys\nprint(sum(int(x) for line in sys.stdin for x in line.split()))",
            0.0,
            1.0,
        ),  # no __iter__
        # the real stdin's readline, patched: lines without their newline (line 169)
        ("from sys import stdin\na, b = map(int, stdin.readline()[:-1].split())\nprint(a + b + 3)", 0.0, 1.0),
        # MockBuffer.readline: always the first line (line 103)
        ("import sys\nsys.stdin.buffer.readline()\nprint(3 + int(sys.stdin.buffer.readline()))", 0.0, 1.0),
        ("import sys\nls = sys.stdin.readlines()\nprint(len(ls) + 4)", 0.0, 1.0),  # split("\n"): 3 items
        ("print(sum(map(int, open(0).read().split())))", 0.0, 1.0),
        ("import sys\nsys.stdout.buffer.write(b'6\\n')", 0.0, 1.0),  # Capturing's StringIO has no buffer
    ]
    programs, expected = _expect(rows)
    assert _scores(programs, SUM) == expected


@pytest.mark.slow
def test_exit_forms_as_the_runner_handles_them(no_leaks):
    """call_method swallows SystemExit (lines 176-177), whatever its code; reliability_guard sets
    builtins.quit = None (line 540); os._exit ends the runner's process: every test fails (-1)."""
    add = "a, b = map(int, input().split())\nprint(a + b)\n"
    rows = [
        (add + "import sys\nsys.exit(1)", 1.0, 0.0),
        (add + "exit('done')", 1.0, 0.0),
        (add + "exit()", 1.0, 1.0),
        (add + "quit()", 0.0, 1.0),
        (add + "import os, sys\nsys.stdout.flush()\nos._exit(0)", 0.0, 1.0),
    ]
    programs, expected = _expect(rows)
    assert _scores(programs, ONE) == expected
    exits = "import sys\nclass Solution:\n    def f(self, a):\n        sys.exit(0)"
    tests = [{"testtype": "functional", "input": "1", "output": "1"}]
    assert _scores([exits], tests, fn_name="f") == {"lcb": [0.0], "script": [0.0]}


def test_main_blocks_as_the_runner_treats_them(no_leaks):
    """clean_if_name (lines 106-119) unwraps an `if __name__ == '__main__':` only when it is the
    last statement, written just so; the program runs as module tmp_sol (line 195), so any other
    main block never runs, in a stdin program or a functional one."""
    main = "def main():\n    a, b = map(int, input().split())\n    print(a + b)\n"
    rows = [
        (main + "if __name__ == '__main__':\n    main()", 1.0, 1.0),
        (main + "if __name__ == '__main__':\n    main()\nDONE = True", 0.0, 1.0),
        (main + "if '__main__' == __name__:\n    main()", 0.0, 1.0),
    ]
    programs, expected = _expect(rows)
    assert _scores(programs, ONE) == expected
    # a functional solution whose main block reads stdin and fails: never run by the runner
    solution = (
        "class Solution:\n    def f(self, a):\n        return a\n"
        "if __name__ == '__main__':\n    input()\n    raise SystemExit(1)"
    )
    tests = [{"testtype": "functional", "input": "1", "output": "1"}]
    assert _scores([solution], tests, fn_name="f") == {"lcb": [1.0], "script": [0.0]}


def test_programs_are_wrapped_and_prefixed_as_the_runner_does(no_leaks):
    """make_function (lines 122-151) moves every top-level statement but imports into a function
    after import_string: a `global` finds no module variable, and a `__future__` import comes
    after the prelude (a SyntaxError); reliability_guard blocks `import resource` (line 590)."""
    rows = [
        (
            "total = 0\ndef add(x):\n    global total\n    total += x\nfor x in input().split():\n"
            "    add(int(x))\nprint(total)",
            0.0,
            1.0,
        ),
        ("from __future__ import annotations\na, b = map(int, input().split())\nprint(a + b)", 0.0, 1.0),
        ("import resource\na, b = map(int, input().split())\nprint(a + b)", 0.0, 1.0),
    ]
    programs, expected = _expect(rows)
    assert _scores(programs, ONE) == expected


def test_big_integers_and_big_outputs_pass_as_in_the_runner(no_leaks):
    """The runner's evaluation sets sys.set_int_max_str_digits(50000) (compute_code_generation_
    metrics.py line 7) and keeps any amount of output; here the cap on output grows with the
    expected output (twice its size)."""
    digits = [{"testtype": "stdin", "input": "", "output": "6001"}]
    assert _scores(["print(len(str(10 ** 6000)))"], digits) == {"lcb": [1.0], "script": [1.0]}
    n = 300_000  # 2.4 MB of output, more than the sandbox's default 1 MiB cap
    big = [{"testtype": "stdin", "input": f"{n}\n", "output": "1234567\n" * n}]
    program = "print('\\n'.join(['1234567'] * int(input())))"
    assert _scores([program], big) == {"lcb": [1.0], "script": [1.0]}


def test_each_test_starts_afresh_unlike_the_runner(no_leaks):
    """Not matched, on purpose: the runner runs all tests of a completion in one process, on one
    Solution() (line 202), so state a program keeps between calls carries over (this solution
    fails its second test there). Here each test is a fresh sandboxed process: it passes."""
    stateful = (
        "class Solution:\n    seen = []\n    def f(self, a):\n        self.seen.append(a)\n"
        "        return len(self.seen)"
    )
    tests = [{"testtype": "functional", "input": "1", "output": "1"}] * 2
    assert _scores([stateful], tests, fn_name="f") == {"lcb": [1.0], "script": [1.0]}


@pytest.mark.skipif(os.geteuid() != 0, reason="only root callers give each program its own uid")
def test_without_bubblewrap_a_daemon_dies_before_its_uid_is_handed_on(monkeypatch):
    """A machine without bubblewrap (a stand-in: the sandbox's probe for it answers "none") runs
    programs unsafe, with no PID namespace: a program's setsid daemon, hidden from /proc's owner
    field (not dumpable), would outlive the call and share its uid with the next program. The slot
    is swept (SIGKILL to every process of the uid) before it is handed on."""
    from ssp.reward import sandbox

    monkeypatch.setattr(sandbox, "_bwrap", lambda: None)
    monkeypatch.setattr(sandbox, "UID_SLOTS", 1)  # the next program gets the same uid
    daemon = (
        "import ctypes, os, time\nif os.fork() == 0:\n    os.setsid()\n"
        "    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: /proc shows root as owner\n"
        "    time.sleep(1000)\nprint('started')"
    )
    run_python(daemon, "", Limits(wall_seconds=2), unsafe=True)
    others = (  # live processes of this uid but this one (/proc/<pid>/status tells the real uid)
        "import os\nme, live = os.getpid(), []\nfor p in os.listdir('/proc'):\n"
        "    if not p.isdigit() or int(p) == me:\n        continue\n    try:\n"
        "        f = dict(l.split(':', 1) for l in open(f'/proc/{p}/status').read().splitlines() if ':' in l)\n"
        "    except OSError:\n        continue\n"
        "    if f['Uid'].split()[0] == str(os.getuid()) and not f['State'].strip().startswith('Z'):\n"
        "        live.append(p)\nprint(live)"
    )
    after = run_python(others, "", FAST, unsafe=True)
    assert after.stdout.strip() == "[]", f"a process of the previous program still runs as this uid: {after}"
