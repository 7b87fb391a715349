"""Test cases of public code datasets, from their published layouts to the corpus' one layout.

    tests, fn_name = convert("io", row["input_output"], None)     # APPS / TACO
    tests, fn_name = convert("lcb", row["public_test_cases"], row["metadata"])

The corpus keeps LiveCodeBench's layout (``core/corpus.py``: a list of ``{"testtype": "stdin" |
"functional", "input", "output"}`` and the function's name), which ``reward/code_tests.py`` runs.
The layouts read (verified against real rows: tests/fixtures/corpus/code_layouts/SOURCES.md):

- ``lcb``: LiveCodeBench ``code_generation_lite``: ``public_test_cases`` is already that list (a
  JSON string); the function's name is ``func_name`` in the JSON string ``metadata``. With
  ``more_tests: [private_test_cases]`` a source keeps the private tests too: they are base64 of zlib of a pickle, read by ``core/lcb_tests.py``, which
  refuses any pickle that names a class or function (it could run code).
- ``io``: APPS and TACO ``input_output``: ``{"inputs": [...], "outputs": [...]}`` (a JSON string),
  plus ``fn_name`` for call-based problems. stdin problems: each input and output a whole
  stdin / stdout text. Call-based: each input the argument list, each output the return value,
  except that some sources (Codewars in APPS) wrap every return value in a one-element list; APPS'
  own checker accepts either. LiveCodeBench's comparison is exact, so when every output of a
  problem is a one-element list it is read as wrapped and unwrapped (a problem whose function
  really returns one-element lists is then checked wrongly: a heuristic, checked on real APPS
  rows, Codewars' and LeetCode's, by running their reference programs in
  tests/test_code_sources.py; the build itself does not run a source's solutions against them).
- ``deepcoder``: agentica-org/DeepCoder-Preview-Dataset ``tests``: per subset the ``lcb`` list,
  the ``io`` dict, or PrimeIntellect's ``[{"type": "stdin_stdout", "input", "output"}]``.

A row whose tests cannot be converted raises ``ValueError`` with the reason; the build counts it
as a dropped row (filter ``no_tests``), never a row without tests.
"""

from __future__ import annotations

import json
from typing import Any

from ssp.core.lcb_tests import decode_tests

LAYOUTS = ("lcb", "io", "deepcoder")
IO_OUTPUTS = "outputs"  # APPS / TACO's expected outputs (named: not a stage's outputs record)


def _loaded(value: Any, what: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"{what} is not JSON ({err.msg} at character {err.pos})") from None
    return value


def _function_name(value: Any) -> str | None:
    """A name, or LiveCodeBench's metadata (``{"func_name": ...}``, maybe a JSON string)."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().startswith("{"):
        value = _loaded(value, "metadata")
    if isinstance(value, dict):
        value = value.get("func_name") or value.get("fn_name")
    return str(value) if value else None


def _lcb(tests: Any) -> list[dict]:
    tests = decode_tests(tests) if isinstance(tests, str) else tests
    if not isinstance(tests, list):
        raise ValueError(f"LiveCodeBench tests must be a list, got {type(tests).__name__}")
    out = []
    for t in tests:
        if not isinstance(t, dict) or "input" not in t or "output" not in t:
            raise ValueError("a LiveCodeBench test needs 'input' and 'output'")
        out.append(
            {"testtype": t.get("testtype", "stdin"), "input": str(t["input"]), "output": str(t["output"])}
        )
    return out


def _io(tests: Any) -> tuple[list[dict], str | None]:
    tests = _loaded(tests, "input_output")
    if not isinstance(tests, dict) or not isinstance(tests.get("inputs"), list):
        raise ValueError("input_output must be {'inputs': [...], 'outputs': [...]}")
    inputs, outputs = tests["inputs"], tests.get(IO_OUTPUTS)
    if not isinstance(outputs, list) or len(outputs) != len(inputs):
        raise ValueError(f"input_output has {len(inputs)} inputs but {len(outputs or [])} outputs")
    fn_name = tests.get("fn_name")
    if not fn_name:
        if not all(isinstance(v, str) for v in (*inputs, *outputs)):
            raise ValueError("a stdin problem's inputs and outputs must be texts")
        return [
            {"testtype": "stdin", "input": i, "output": o} for i, o in zip(inputs, outputs, strict=True)
        ], None
    wrapped = all(isinstance(o, list) and len(o) == 1 for o in outputs)
    cases = []
    for args, out in zip(inputs, outputs, strict=True):
        args = args if isinstance(args, list) else [args]
        value = out[0] if wrapped else out
        cases.append(
            {
                "testtype": "functional",
                "input": "\n".join(json.dumps(a) for a in args),
                "output": json.dumps(value),
            }
        )
    return cases, str(fn_name)


def _deepcoder(tests: Any) -> tuple[list[dict], str | None]:
    tests = _loaded(tests, "the tests")
    if isinstance(tests, dict):
        return _io(tests)
    if isinstance(tests, list) and tests and all(isinstance(t, dict) and "type" in t for t in tests):
        kinds = {t["type"] for t in tests}
        if kinds != {"stdin_stdout"}:
            raise ValueError(f"test types {sorted(kinds)}: only stdin_stdout is read")
        return [
            {"testtype": "stdin", "input": str(t["input"]), "output": str(t["output"])} for t in tests
        ], None
    return _lcb(tests), None


def convert(layout: str, tests: Any, fn_name: Any = None, more: tuple = ()) -> tuple[list[dict], str | None]:
    """(tests in LiveCodeBench's layout, the function's name or None) of one row; ``more``: further
    tests in the same layout (LiveCodeBench's private tests; each may be empty). ValueError with
    the reason when they cannot be read."""
    if layout == "lcb":
        cases, name = _lcb(tests), _function_name(fn_name)
        for extra in more:
            cases += _lcb(extra) if extra else []
    elif layout == "io":
        cases, name = _io(tests)
    elif layout == "deepcoder":
        cases, name = _deepcoder(tests)
        name = name or _function_name(fn_name)
    else:
        raise ValueError(f"unknown tests layout {layout!r}; known: {', '.join(LAYOUTS)}")
    if not cases:
        raise ValueError("no tests")
    if any(c["testtype"] == "functional" for c in cases) and not name:
        raise ValueError("functional tests but no function name")
    return cases, name
