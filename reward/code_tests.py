"""``code_tests``: run the completion's program against test cases in the sandbox.

The program is the last fenced code block of the completion (```python ... ``` or a bare
```). Test cases come from a dataset column (``tests_column``, default ``tests``): a list of
dicts, or its JSON string, in either LiveCodeBench style:

- ``{"testtype": "stdin", "input": "1 2\\n", "output": "3\\n"}``: the program reads stdin;
  its stdout must equal ``output`` line by line, each line stripped of surrounding white
  space, and lines that differ as text may still match as numbers (``Decimal`` per token, no
  tolerance): LiveCodeBench's own comparison (``grade_stdio``).
- ``{"testtype": "functional", "input": "[1, 2]\\n3", "output": "[3, 5]"}``: ``input`` holds one
  JSON value per line, the arguments of the function named by the row's ``fn_name`` column
  (or the test's own ``fn_name``); a method of ``class Solution`` is used when there is one.
  The returned value must equal the JSON ``output`` (a tuple counts as a list, as there).

How a program is run (``harness``; docs/rewards.md has the table of every difference):

- ``lcb`` (the default): LiveCodeBench's official runner (``lcb_runner/evaluation/
  testing_util.py`` at ``LCB_COMMIT``), reproduced inside the sandbox for one test: the
  program's top-level statements wrapped in a function (``clean_if_name``, ``make_function``),
  stdin patched and stdout captured for the duration of the call (``call_method``,
  ``Capturing``), ``SystemExit`` swallowed, a ``SIGALRM`` of ``test_seconds`` around the call,
  ``quit`` and a few modules disabled (``reliability_guard``). Its quirks come with it, on
  purpose, so scores compare with published numbers: output a thread prints after the call
  has returned is lost, a top-level ``global`` fails, ``for line in sys.stdin`` fails.
- ``script``: the program runs as a plain ``python3 main.py`` with the same implicit imports:
  every thread's output counts, ``sys.exit(1)`` fails, stdin is a real pipe.

Either way every program runs with LiveCodeBench's implicit imports in front (``LCB_PRELUDE``:
``from typing import *``, ``collections``, ``math``, ``itertools``, ... and a recursion limit of
50,000), so a solution written like its starter code (``List[int]`` with no import) runs as it
does there, and with its evaluation's ``sys.set_int_max_str_digits(50000)``. The imports cost
about 18 ms per execution (docs/benchmarks.md); ``implicit_imports=False`` leaves them out.

Score: 1.0 if every test passes, else 0.0; ``partial=True`` gives the fraction passed. No
program: 0.0. A wrong answer, a crash, a time or memory limit of the *program* is a failed test.
Not scores (``reward/outcome.py``): no tests, malformed tests, a functional test with no
function name or an expected output that is not JSON are *unscorable* (None); a sandbox that
cannot start or run the program is an *error* (None, counted; too many stop the stage).

Each test is one sandboxed process (``reward/sandbox.py``). ``test_seconds`` (6, the runner's
``--timeout``) bounds a test: with ``harness: lcb`` as the runner's alarm around the call (the
process itself gets ``2 * test_seconds + 1``: start-up, module-level code, a program that
blocks the alarm); with ``script`` the whole process. ``total_seconds`` bounds a whole
completion (remaining tests fail once it is spent); by default the runner's global limit,
``(test_seconds + 1) * len(tests) + 5``. ``max_concurrency`` completions run at once.
``sandbox: strict`` (the default) refuses, when the reward is built, to run anything where
bubblewrap cannot isolate programs; ``sandbox: unsafe`` runs them with the weaker isolation left
(docs/security.md), with a warning. The layers in use are logged once when the reward is built.
"""

from __future__ import annotations

import ast
import json
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, InvalidOperation
from typing import Any

from ssp.reward.outcome import ERROR, SCORED, UNSCORABLE, CheckedReward, RewardError, log
from ssp.reward.registry import completion_text
from ssp.reward.sandbox import Limits, SandboxUnavailable, require_isolation, run_python

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.DOTALL)
_FUTURE = re.compile(r"^from __future__ import [^\n]*\n?", re.MULTILINE)

# LiveCodeBench's `import_string`, put before every program by its runner.
LCB_PRELUDE = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\n"
    "from random import *\nfrom statistics import *\nfrom itertools import *\nfrom functools import *\n"
    "from operator import *\nfrom io import *\nfrom sys import *\nfrom json import *\n"
    "from builtins import *\nfrom typing import *\nimport string\nimport re\nimport datetime\n"
    "import collections\nimport heapq\nimport bisect\nimport copy\nimport math\nimport random\n"
    "import statistics\nimport itertools\nimport functools\nimport operator\nimport io\nimport sys\n"
    "import json\nsys.setrecursionlimit(50000)\n"
)

# The LiveCodeBench runner read for `harness: lcb` (lcb_runner/evaluation/testing_util.py, last
# changed in 16de2a1, 2025-05-23) and its caller compute_code_generation_metrics.py.
LCB_COMMIT = "28fef95ea8c9f7a547c8329f2cd3d32b92c1fa24"
# Set by LiveCodeBench's evaluation for every program (compute_code_generation_metrics.py line 7).
INT_MAX_STR_DIGITS = 50000
_SET_DIGITS = f"__import__('sys').set_int_max_str_digits({INT_MAX_STR_DIGITS})\n"
# Ends the output of a test the `lcb` driver ran to completion: without it (os._exit, a
# SystemExit the runner does not catch) the test failed, as the runner's process died there.
_DONE = "\x00ssp-lcb-done\x00"

# Appended to the program for function-style tests with `harness: script`: read JSON arguments,
# call, print JSON.
_DRIVER = """

def __ssp_main():
    import json as __j, sys as __s
    __args = [__j.loads(__l) for __l in __s.stdin.read().splitlines() if __l.strip()]
    __g = globals()
    if "Solution" in __g and hasattr(__g["Solution"], {fn!r}):
        __f = getattr(__g["Solution"](), {fn!r})
    else:
        __f = __g[{fn!r}]
    __s.stdout.write("\\n__SSP_RESULT__" + __j.dumps(__f(*__args)))

__ssp_main()
"""

# `harness: lcb`: the sandboxed process runs this driver, then `_ssp_lcb_main(...)` on one test.
# Written for ssp; it reproduces the behaviour of LiveCodeBench's runner (lcb_runner/evaluation/
# testing_util.py at LCB_COMMIT; LiveCodeBench is MIT-licensed) that a program can observe, as
# docs/rewards.md's table lists it. The `lcb` harness's own design, not the runner's: input arrives
# on stdin (read whole, so fd 0 is at its end for the program); the result (the captured output of
# a stdin test, the `repr` of a functional test's returned value) leaves on a copy of fd 1, while
# fd 1 itself points at /dev/null, so whatever the runner would not capture (a thread printing
# after the call, `os.write(1, ...)`, `sys.__stdout__`, the prelude's `stdout`) is lost, as there;
# the alarm is `setitimer` (fractional seconds); the stdin patches are applied by hand (no
# unittest.mock, ~100 ms to import); a failure ends the process without the end marker.
_LCB_DRIVER = r"""
import ast, builtins, json, os, signal, sys
from io import StringIO
from types import ModuleType

_ssp_result_fd = os.dup(1)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)


class TimeoutException(Exception):
    # The runner's alarm raises an exception of this class name: a program may catch it (it is an
    # Exception) and print type(e).__name__, so the name is part of what a test can see.
    pass


def _ssp_alarm(seconds):
    signal.setitimer(signal.ITIMER_REAL, seconds)


def _ssp_fail(why):
    os.write(2, (why + "\n").encode("utf-8", "replace"))
    os._exit(1)


def _ssp_alarm_went_off(signum, frame):
    # The runner's SIGALRM handler prints this line (its spelling) to the current sys.stdout,
    # the capture during the call, then raises.
    print("timeout occured: alarm went off")
    raise TimeoutException


def _ssp_under_alarm(seconds, call, *args):
    # The runner's per-test alarm: armed just before the call, disarmed when it returns or
    # raises; any Exception out of the call (the alarm's included) fails the test. Anything
    # else (SystemExit, KeyboardInterrupt) ends the process, so the test fails too.
    _ssp_alarm(seconds)
    try:
        value = call(*args)
    except Exception as err:
        _ssp_alarm(0)
        kind = "Time Limit Exceeded" if isinstance(err, TimeoutException) else "Runtime Error"
        _ssp_fail(kind + ": " + repr(err))
    _ssp_alarm(0)
    return value


class _SspInputBytes:
    # What `sys.stdin.buffer` is during the runner's call: `read()` gives all the input as UTF-8
    # bytes, `readline()` always the first line (with b"\n") however often it is called, and
    # nothing else exists (no readlines, no iteration).
    __slots__ = ("_ssp_data",)

    def __init__(self, text):
        self._ssp_data = text.encode("utf-8")

    def read(self, *_ignored):
        return self._ssp_data

    def readline(self, *_ignored):
        return self._ssp_data.partition(b"\n")[0] + b"\n"


class _SspInput:
    # What `sys.stdin` is during the runner's call: `read()` is all the input every time,
    # `readlines()` is input.split("\n") (no newlines, a trailing ""), `readline()` reads on from
    # a cursor (newline kept; input() uses it), `buffer` as above, any other attribute is the
    # cursor's (a StringIO). Dunder methods are not forwarded, so `for line in sys.stdin` is a
    # TypeError, as there.
    def __init__(self, text):
        cursor = StringIO(text)
        self._ssp_cursor = cursor
        self.read = lambda *_ignored: text
        self.readlines = lambda *_ignored: text.split("\n")
        self.readline = cursor.readline
        self.buffer = _SspInputBytes(text)

    def __getattr__(self, name):
        return getattr(self._ssp_cursor, name)


_SSP_NOT_OWN = object()


def _ssp_set_all(assignments):
    # Sets each (owner, name, value) in order; returns the undo list. Undone last first, as
    # unittest.mock.patch does: a value the owner held itself is put back, a name it only
    # inherited (a method of the real stdin's class) is deleted again.
    undo = []
    for owner, name, value in assignments:
        own = getattr(owner, "__dict__", {})
        undo.append((owner, name, own[name] if name in own else _SSP_NOT_OWN))
        setattr(owner, name, value)
    return undo


def _ssp_unset_all(undo):
    while undo:
        owner, name, old = undo.pop()
        if old is _SSP_NOT_OWN:
            delattr(owner, name)
        else:
            setattr(owner, name, old)


def _ssp_run_on_input(function, text):
    # The runner's call of a stdin program, with its five patches in the order they take effect:
    # first read/readlines/readline of the *real* sys.stdin (the object the prelude's
    # `from sys import *` bound as `stdin`; its readline returns the lines of
    # input.split("\n") without newlines, then raises StopIteration), then sys.stdin itself,
    # then builtins.open (a file holding the input; a program sees it only where `open` is not
    # the prelude's `from builtins import *` one, which is the real open on an empty fd 0).
    # SystemExit, whatever its code, just ends the call.
    real = sys.stdin
    pieces = iter(text.split("\n"))
    undo = _ssp_set_all(
        [
            (real, "read", lambda *_a: text),
            (real, "readlines", lambda *_a: text.split("\n")),
            (real, "readline", lambda *_a: next(pieces)),
            (sys, "stdin", _SspInput(text)),
            (builtins, "open", lambda *_a, **_k: StringIO(text)),
        ]
    )
    try:
        function()
    except SystemExit:
        pass
    finally:
        _ssp_unset_all(undo)


def _ssp_close_takes_one_argument(_arg):
    # The runner's capture replaces the StringIO's close by a one-argument no-op: a program's
    # sys.stdout.close() is a TypeError (a runtime error), and the capture stays readable.
    return 1


def _ssp_load(source, seconds):
    # The runner execs the program text in a fresh module named tmp_sol (so no
    # `if __name__ == "__main__":` block runs there), under the alarm, and grades an instance of
    # its `Solution` whenever the text contains "class Solution" anywhere, else the module.
    module = ModuleType("tmp_sol", "")
    _ssp_alarm(seconds)
    try:
        exec(source, module.__dict__)
        return module.Solution() if "class Solution" in source else module
    finally:
        _ssp_alarm(0)


def _ssp_loaded_function(source, seconds, name):
    try:
        holder = _ssp_load(source, seconds)
    except Exception as err:
        _ssp_fail("Error during testing: " + repr(err))
    try:
        found = getattr(holder, name) if holder is not None else None
    except Exception:
        found = None
    if found is None:
        _ssp_fail("Error during testing: no " + name)
    return found


def _ssp_main_unwrapped(code):
    # The runner unwraps an `if __name__ == '__main__':` only when it is the last top-level
    # statement and its test reads exactly so once unparsed; its `else` is dropped. Any other
    # program, or one that does not parse, is left as it was.
    try:
        statements = ast.parse(code).body
        last = statements[-1]
        if isinstance(last, ast.If) and ast.unparse(last.test).strip() == "__name__ == '__main__'":
            return ast.unparse(statements[:-1]) + "\n" + ast.unparse(last.body)
    except Exception:
        pass
    return code


def _ssp_stdin_source(code, prelude):
    # The runner's text for a stdin program: the prelude, then the program's top-level imports,
    # then every other top-level statement as the body of `def wrapped_function():`, all as
    # ast.unparse writes it (so a top-level `global` finds no module variable, and a
    # `from __future__` import lands after the prelude). A program that does not parse is left
    # as it was, prelude-less.
    code = _ssp_main_unwrapped(code)
    try:
        imports, others = [], []
        for node in ast.parse(code).body:
            (imports if isinstance(node, (ast.Import, ast.ImportFrom)) else others).append(node)
        wrapper = ast.parse("def wrapped_function():\n    pass\n").body[0]
        wrapper.body = others
        return "\n".join([prelude, ast.unparse(imports), ast.unparse(wrapper)])
    except Exception:
        return code


def _ssp_stdin_test(code, text, seconds, prelude):
    # Only what the program prints to sys.stdout while its call runs counts: a StringIO in
    # sys.stdout from just before the call to just after it, the alarm around the call.
    function = _ssp_loaded_function(_ssp_stdin_source(code, prelude), seconds, "wrapped_function")
    sink = StringIO()
    sink.close = _ssp_close_takes_one_argument
    before, sys.stdout = sys.stdout, sink
    _ssp_under_alarm(seconds, _ssp_run_on_input, function, text)
    sys.stdout = before
    return sink.getvalue()


def _ssp_functional_test(code, text, fn_name, seconds, prelude):
    # The runner's functional test: the prelude, a blank line, the program; each input line one
    # JSON argument (blank lines skipped here); the call under the alarm, nothing captured or
    # patched, SystemExit not caught; a returned tuple counts as a list.
    function = _ssp_loaded_function(prelude + "\n\n" + code, seconds, fn_name)
    arguments = [json.loads(line) for line in text.split("\n") if line.strip()]
    value = _ssp_under_alarm(seconds, function, *arguments)
    return repr(list(value) if isinstance(value, tuple) else value)


def _ssp_restrict():
    # The parts of the runner's reliability_guard a correct program can meet: quit and help are
    # None, OMP_NUM_THREADS=1, and importing these modules fails. Its os.*, shutil.* and
    # subprocess.Popen = None are left out: the sandbox, not a guard, holds the program here.
    builtins.quit = None
    builtins.help = None
    os.environ["OMP_NUM_THREADS"] = "1"
    for blocked in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[blocked] = None


def _ssp_lcb_main(fn_name, code, seconds, prelude, digits, marker):
    text = sys.stdin.buffer.read().decode("utf-8", "replace")
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(digits)
    signal.signal(signal.SIGALRM, _ssp_alarm_went_off)
    _ssp_restrict()
    if fn_name is None:
        result = _ssp_stdin_test(code, text, seconds, prelude)
    else:
        result = _ssp_functional_test(code, text, fn_name, seconds, prelude)
    data = (result + marker).encode("utf-8", "surrogatepass")
    while data:
        data = data[os.write(_ssp_result_fd, data) :]
    os._exit(0)
"""


class _CannotRun(Exception):
    """The sandbox could not run a program: not the program's fault."""


def extract_program(text: str) -> str | None:
    blocks = _FENCE.findall(text)
    if not blocks:
        return None
    python = [code for lang, code in blocks if lang.lower() in ("", "python", "python3", "py")]
    return (python or [blocks[-1][1]])[-1]


def with_prelude(program: str) -> str:
    """The program with LiveCodeBench's implicit imports in front (``__future__`` imports first)."""
    future = "".join(m.group(0).rstrip("\n") + "\n" for m in _FUTURE.finditer(program))
    return future + LCB_PRELUDE + "\n" + _FUTURE.sub("", program)


def stdout_matches(got: str, expected: str) -> bool:
    """LiveCodeBench's stdin/stdout comparison (see the module docstring)."""
    got_lines = [line.strip() for line in got.strip().split("\n")]
    want_lines = [line.strip() for line in expected.strip().split("\n")]
    if len(got_lines) != len(want_lines):
        return False
    for g, w in zip(got_lines, want_lines, strict=True):
        if g == w:
            continue
        try:
            if [Decimal(t) for t in g.split()] != [Decimal(t) for t in w.split()]:
                return False
        except InvalidOperation:
            return False
    return True


def _literal(text: str) -> Any:
    """The value whose ``repr`` the ``lcb`` driver wrote: read as JSON where the text is JSON (a
    list of numbers: the common case, and light on memory), else as a Python literal (tuples,
    single-quoted strings, ``True``, ``int`` keys), never evaluated."""
    try:
        return json.loads(text)
    except ValueError:
        return ast.literal_eval(text)


def _parse_tests(raw: Any) -> list[dict] | None:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return None
    if not isinstance(raw, list) or not raw:
        return None
    if not all(isinstance(t, dict) and "input" in t and "output" in t for t in raw):
        return None
    return raw


def _runnable(test: dict, fn_name: str | None) -> bool:
    """Can this test be run at all (a function name, JSON expected output)?"""
    if test.get("testtype", "stdin") != "functional":
        return True
    fn = test.get("fn_name") or fn_name
    if not fn or not str(fn).isidentifier():
        return False
    try:
        json.loads(test["output"])
    except (json.JSONDecodeError, TypeError):
        return False
    return True


HARNESSES = ("lcb", "script")


def lcb_source(program: str, fn_name: str | None, seconds: float, implicit_imports: bool = True) -> str:
    """What the sandbox runs for one test with ``harness: lcb``: the driver reproducing the runner,
    on ``program`` (``fn_name`` None: a stdin test)."""
    prelude = LCB_PRELUDE if implicit_imports else ""
    args = (fn_name, program, float(seconds), prelude, INT_MAX_STR_DIGITS, _DONE)
    return _LCB_DRIVER + "_ssp_lcb_main" + repr(args) + "\n"


def script_source(program: str, implicit_imports: bool = True) -> str:
    """What the sandbox runs with ``harness: script``: the program itself, after the implicit
    imports and the evaluation's digit limit (``__future__`` imports first)."""
    future = "".join(m.group(0).rstrip("\n") + "\n" for m in _FUTURE.finditer(program))
    body = with_prelude(program)[len(future) :] if implicit_imports else _FUTURE.sub("", program)
    return future + _SET_DIGITS + body


class CodeTests(CheckedReward):
    def __init__(
        self,
        tests_column: str = "tests",
        fn_name_column: str = "fn_name",
        partial: bool = False,
        test_seconds: float = 6.0,
        total_seconds: float | None = None,
        max_concurrency: int = 4,
        memory_mb: int = 1024,
        cpu_seconds: int | None = None,
        max_failure_rate: float = 0.25,
        implicit_imports: bool = True,
        harness: str = "lcb",
        sandbox: str = "strict",
    ):
        super().__init__(max_failure_rate)
        self.__name__ = "code_tests"
        if sandbox not in ("strict", "unsafe"):
            raise ValueError(f"code_tests: sandbox must be 'strict' or 'unsafe', got {sandbox!r}")
        if harness not in HARNESSES:
            raise ValueError(f"code_tests: harness must be 'lcb' or 'script', got {harness!r}")
        self.unsafe = sandbox == "unsafe"
        try:
            layers = require_isolation(self.unsafe)
        except SandboxUnavailable as err:
            raise RewardError(f"reward code_tests: {err}") from None
        active = ", ".join(k for k, v in layers.items() if v)
        if layers["bubblewrap"]:
            log.info("code_tests: programs run isolated by %s", active)
        else:
            log.warning(
                "code_tests: sandbox: unsafe: programs run WITHOUT bubblewrap, on the host file system, "
                "and can outlive their call; active layers: %s (docs/security.md)",
                active,
            )
        self.harness, self.implicit_imports = harness, implicit_imports
        self.tests_column, self.fn_name_column, self.partial = tests_column, fn_name_column, partial
        self.test_seconds, self.total_seconds = test_seconds, total_seconds
        self.max_concurrency, self.memory_mb, self.cpu_seconds = max_concurrency, memory_mb, cpu_seconds

    def budget(self, n_tests: int) -> float:
        """Seconds one completion may take: ``total_seconds``, or by default the LiveCodeBench
        runner's global limit (compute_code_generation_metrics.py, ``check_correctness``)."""
        if self.total_seconds is not None:
            return self.total_seconds
        return (self.test_seconds + 1) * n_tests + 5

    def _limits(self, expected: str, seconds_left: float) -> Limits:
        wall = 2 * self.test_seconds + 1 if self.harness == "lcb" else self.test_seconds
        wall = min(wall, seconds_left)
        return Limits(
            wall_seconds=wall,
            # the runner's limit is wall time only; by default CPU time never binds before it
            cpu_seconds=self.cpu_seconds or max(1, math.ceil(wall)),
            memory_mb=self.memory_mb,
            # the runner keeps any amount of output: room for twice the expected one
            output_bytes=max(Limits.output_bytes, 2 * len(expected.encode()) + 4096),
        )

    def _run(self, source: str, stdin: str, limits: Limits):
        result = run_python(source, stdin, limits, unsafe=self.unsafe)
        if result.status == "sandbox_error":
            raise _CannotRun(f"the sandbox could not start: {result.stderr.strip()[:300]}")
        return result

    def _passes(self, program: str, test: dict, fn_name: str | None, seconds_left: float) -> bool:
        expected = str(test["output"])
        limits = self._limits(expected, seconds_left)
        fn = str(test.get("fn_name") or fn_name) if test.get("testtype", "stdin") == "functional" else None
        if self.harness == "lcb":
            source = lcb_source(program, fn, self.test_seconds, self.implicit_imports)
            result = self._run(source, str(test["input"]), limits)
            if result.status != "ok" or not result.stdout.endswith(_DONE):
                return False  # the runner's -1 (process died), -3 (time) or -4 (error)
            got = result.stdout[: -len(_DONE)]
            if fn is None:
                return stdout_matches(got, expected)
            try:  # the returned value, compared as the runner does: prediction == json.loads(output)
                return _literal(got) == json.loads(expected)
            except Exception:  # noqa: BLE001 - not a literal (an object, nan, inf): not equal
                return False
        if fn is not None:
            source = script_source(program, self.implicit_imports) + _DRIVER.format(fn=fn)
            result = self._run(source, str(test["input"]), limits)
            if result.status != "ok" or "__SSP_RESULT__" not in result.stdout:
                return False
            try:
                got = json.loads(result.stdout.rsplit("__SSP_RESULT__", 1)[1])
            except json.JSONDecodeError:
                return False
            return got == json.loads(expected)
        result = self._run(script_source(program, self.implicit_imports), str(test["input"]), limits)
        return result.status == "ok" and stdout_matches(result.stdout, expected)

    def _score(self, completion: Any, raw_tests: Any, fn_name: str | None) -> tuple[str, float | None, str]:
        tests = _parse_tests(raw_tests)
        if tests is None or not all(_runnable(t, fn_name) for t in tests):
            return UNSCORABLE, None, ""
        program = extract_program(completion_text(completion))
        if program is None:
            return SCORED, 0.0, ""
        deadline = time.monotonic() + self.budget(len(tests))
        passed = 0
        try:
            for test in tests:
                left = deadline - time.monotonic()
                ok = left > 0.05 and self._passes(program, test, fn_name, left)
                passed += ok
                if not ok and not self.partial:
                    return SCORED, 0.0, ""
        except Exception as err:  # noqa: BLE001 - the sandbox failed, not the program: counted
            return ERROR, None, f"{type(err).__name__}: {err}"
        return SCORED, passed / len(tests) if self.partial else 1.0, ""

    def _outcomes(self, completions: list, **columns) -> list[tuple[str, float | None, str]]:
        if self.tests_column not in columns:
            raise KeyError(
                f"code_tests needs the dataset column {self.tests_column!r} (got: {sorted(columns)})"
            )
        tests = columns[self.tests_column]
        fn_names = columns.get(self.fn_name_column) or [None] * len(completions)
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            return list(pool.map(self._score, completions, tests, fn_names))
