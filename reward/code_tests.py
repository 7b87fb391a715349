"""``code_tests``: run the completion's program against test cases in the sandbox.

The program is the last fenced code block of the completion (```python ... ``` or a bare
```). Test cases come from a dataset column (``tests_column``, default ``tests``): a list of
dicts, or its JSON string, in either LiveCodeBench style:

- ``{"testtype": "stdin", "input": "1 2\\n", "output": "3\\n"}``: the program reads stdin;
  its stdout must equal ``output`` line by line, each line stripped of surrounding white
  space, and lines that differ as text may still match as numbers (``Decimal`` per token):
  LiveCodeBench's own comparison (``lcb_runner/evaluation/testing_util.py``, ``grade_stdio``).
- ``{"testtype": "functional", "input": "[1, 2]\\n3", "output": "[3, 5]"}``: ``input`` holds one
  JSON value per line, the arguments of the function named by the row's ``fn_name`` column
  (or the test's own ``fn_name``); a method of ``class Solution`` is used when there is one.
  The returned value must equal the JSON ``output`` (a tuple counts as a list, as there).

Like the LiveCodeBench runner, every program runs with its implicit imports in front
(``LCB_PRELUDE``: ``from typing import *``, ``collections``, ``math``, ``itertools``, ... and a
recursion limit of 50,000), so a solution written like its starter code (``List[int]`` with no
import) runs as it does there. A ``from __future__`` import is kept first. The imports cost
about 18 ms per execution (docs/benchmarks.md); ``implicit_imports=False`` runs programs bare.

Score: 1.0 if every test passes, else 0.0; ``partial=True`` gives the fraction passed. No
program: 0.0. A wrong answer, a crash, a time or memory limit of the *program* is a failed test.
Not scores (``reward/outcome.py``): no tests, malformed tests, a functional test with no
function name or an expected output that is not JSON are *unscorable* (None); a sandbox that
cannot start or run the program is an *error* (None, counted; too many stop the stage).

Each test is one sandboxed process (``reward/sandbox.py``) with a per-test wall-clock limit;
``total_seconds`` bounds a whole completion (remaining tests fail once it is spent).
``max_concurrency`` completions run at once. ``sandbox: strict`` (the default) refuses, when the
reward is built, to run anything where bubblewrap cannot isolate programs; ``sandbox: unsafe``
runs them with the weaker isolation left (docs/security.md), with a warning. The layers in use
are logged once when the reward is built.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, InvalidOperation
from typing import Any

from reward.outcome import ERROR, SCORED, UNSCORABLE, CheckedReward, RewardError, log
from reward.registry import completion_text
from reward.sandbox import Limits, SandboxUnavailable, require_isolation, run_python

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

# Appended to the program for function-style tests: read JSON arguments, call, print JSON.
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


class CodeTests(CheckedReward):
    def __init__(
        self,
        tests_column: str = "tests",
        fn_name_column: str = "fn_name",
        partial: bool = False,
        test_seconds: float = 6.0,
        total_seconds: float = 60.0,
        max_concurrency: int = 4,
        memory_mb: int = 1024,
        cpu_seconds: int = 6,
        max_failure_rate: float = 0.25,
        implicit_imports: bool = True,
        sandbox: str = "strict",
    ):
        super().__init__(max_failure_rate)
        self.__name__ = "code_tests"
        if sandbox not in ("strict", "unsafe"):
            raise ValueError(f"code_tests: sandbox must be 'strict' or 'unsafe', got {sandbox!r}")
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
        self.prepare = with_prelude if implicit_imports else (lambda program: program)
        self.tests_column, self.fn_name_column, self.partial = tests_column, fn_name_column, partial
        self.total_seconds, self.max_concurrency = total_seconds, max_concurrency
        self.limits = Limits(wall_seconds=test_seconds, cpu_seconds=cpu_seconds, memory_mb=memory_mb)

    def _run(self, source: str, stdin: str, limits: Limits):
        result = run_python(source, stdin, limits, unsafe=self.unsafe)
        if result.status == "sandbox_error":
            raise _CannotRun(f"the sandbox could not start: {result.stderr.strip()[:300]}")
        return result

    def _passes(self, program: str, test: dict, fn_name: str | None, seconds_left: float) -> bool:
        limits = Limits(
            **{**self.limits.__dict__, "wall_seconds": min(self.limits.wall_seconds, seconds_left)}
        )
        if test.get("testtype", "stdin") == "functional":
            fn = str(test.get("fn_name") or fn_name)
            result = self._run(self.prepare(program) + _DRIVER.format(fn=fn), str(test["input"]), limits)
            if result.status != "ok" or "__SSP_RESULT__" not in result.stdout:
                return False
            try:
                got = json.loads(result.stdout.rsplit("__SSP_RESULT__", 1)[1])
            except json.JSONDecodeError:
                return False
            return got == json.loads(test["output"])
        result = self._run(self.prepare(program), str(test["input"]), limits)
        return result.status == "ok" and stdout_matches(result.stdout, str(test["output"]))

    def _score(self, completion: Any, raw_tests: Any, fn_name: str | None) -> tuple[str, float | None, str]:
        tests = _parse_tests(raw_tests)
        if tests is None or not all(_runnable(t, fn_name) for t in tests):
            return UNSCORABLE, None, ""
        program = extract_program(completion_text(completion))
        if program is None:
            return SCORED, 0.0, ""
        deadline = time.monotonic() + self.total_seconds
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
