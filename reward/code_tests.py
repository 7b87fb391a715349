"""``code_tests``: run the completion's program against test cases in the sandbox.

The program is the last fenced code block of the completion (```python ... ``` or a bare
```). Test cases come from a dataset column (``tests_column``, default ``tests``): a list of
dicts, or its JSON string, in either LiveCodeBench style:

- ``{"testtype": "stdin", "input": "1 2\\n", "output": "3\\n"}``: the program reads stdin;
  its stdout must equal ``output`` up to trailing white space on each line and at the end.
- ``{"testtype": "functional", "input": "[1, 2]\\n3", "output": "[3, 5]"}``: ``input`` holds one
  JSON value per line, the arguments of the function named by the row's ``fn_name`` column
  (or the test's own ``fn_name``); a method of ``class Solution`` is used when there is one.
  The returned value must equal the JSON ``output``.

Score: 1.0 if every test passes, else 0.0; ``partial=True`` gives the fraction passed. No
program: 0.0. No tests or malformed tests: None (cannot be scored). Each test is one sandboxed
process (``reward/sandbox.py``) with a per-test wall-clock limit; ``total_seconds`` bounds a
whole completion (remaining tests fail once it is spent). ``max_concurrency`` completions run
at once.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reward.registry import completion_text
from reward.sandbox import Limits, run_python

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.DOTALL)

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


def extract_program(text: str) -> str | None:
    blocks = _FENCE.findall(text)
    if not blocks:
        return None
    python = [code for lang, code in blocks if lang.lower() in ("", "python", "python3", "py")]
    return (python or [blocks[-1][1]])[-1]


def _lines(s: str) -> list[str]:
    return [line.rstrip() for line in s.rstrip().splitlines()]


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


class CodeTests:
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
    ):
        self.__name__ = "code_tests"
        self.tests_column, self.fn_name_column, self.partial = tests_column, fn_name_column, partial
        self.total_seconds, self.max_concurrency = total_seconds, max_concurrency
        self.limits = Limits(wall_seconds=test_seconds, cpu_seconds=cpu_seconds, memory_mb=memory_mb)

    def _passes(self, program: str, test: dict, fn_name: str | None, seconds_left: float) -> bool:
        limits = Limits(
            **{**self.limits.__dict__, "wall_seconds": min(self.limits.wall_seconds, seconds_left)}
        )
        if test.get("testtype", "stdin") == "functional":
            fn = test.get("fn_name") or fn_name
            if not fn or not str(fn).isidentifier():
                return False
            result = run_python(program + _DRIVER.format(fn=str(fn)), str(test["input"]), limits)
            if result.status != "ok" or "__SSP_RESULT__" not in result.stdout:
                return False
            try:
                got = json.loads(result.stdout.rsplit("__SSP_RESULT__", 1)[1])
                return got == json.loads(test["output"])
            except (json.JSONDecodeError, TypeError):
                return False
        result = run_python(program, str(test["input"]), limits)
        return result.status == "ok" and _lines(result.stdout) == _lines(str(test["output"]))

    def _score(self, completion: Any, raw_tests: Any, fn_name: str | None) -> float | None:
        tests = _parse_tests(raw_tests)
        if tests is None:
            return None
        program = extract_program(completion_text(completion))
        if program is None:
            return 0.0
        deadline = time.monotonic() + self.total_seconds
        passed = 0
        for test in tests:
            left = deadline - time.monotonic()
            ok = left > 0.05 and self._passes(program, test, fn_name, left)
            passed += ok
            if not ok and not self.partial:
                return 0.0
        return passed / len(tests) if self.partial else 1.0

    def __call__(self, completions: list, **columns) -> list[float | None]:
        if self.tests_column not in columns:
            raise KeyError(
                f"code_tests needs the dataset column {self.tests_column!r} (got: {sorted(columns)})"
            )
        tests = columns[self.tests_column]
        fn_names = columns.get(self.fn_name_column) or [None] * len(completions)
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            return list(pool.map(self._score, completions, tests, fn_names))
