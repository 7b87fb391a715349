"""The tiny task's code domain: small programming problems with hidden tests, in both
LiveCodeBench test styles, each with at least two genuinely different correct programs.

    rng = random.Random(0)
    p = make_code_problem(rng)
    p.problem, p.fn_name, p.tests[0], [s.strategy for s in p.solutions]
    # ('Write a function f(x) that returns 3 * x + 4.', 'f',
    #  {'testtype': 'functional', 'input': '0', 'output': '4'}, ['expression', 'loop'])

Functional problems name the function (``fn_name``) and give one JSON argument per input line;
stdin problems read standard input and print (``reward/code_tests.py`` reads both, as
LiveCodeBench does). A solution is the program in one ```python block, the form ``code_tests``
extracts. Programs are a few lines so that a ~1M-parameter model learns some of them in minutes:
what varies between problems are the numbers, which the program must carry over from the
statement (as the math domains' answers must be computed from theirs). The tests are hidden from
the model and computed here from the problem's own numbers, never from a solution's output.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

from ssp.data_pipeline.tiny.problem import Problem, Solution

DOMAIN = "code"


def _program(source: str) -> str:
    return f"```python\n{source}\n```"


def _functional(fn_name: str, cases: list[tuple[list, object]]) -> tuple[dict, ...]:
    """LiveCodeBench's functional tests: one JSON argument per input line, the JSON return value."""
    return tuple(
        {"testtype": "functional", "input": "\n".join(json.dumps(a) for a in args), "output": json.dumps(out)}
        for args, out in cases
    )


def _stdin(cases: list[tuple[str, str]]) -> tuple[dict, ...]:
    return tuple({"testtype": "stdin", "input": inp, "output": out} for inp, out in cases)


def _problem(
    kind: str, text: str, programs: dict[str, str], tests: tuple[dict, ...], fn_name: str = ""
) -> Problem:
    """A code problem: its programs by strategy name, its hidden tests, no answer."""
    solutions = tuple(Solution(strategy, _program(source)) for strategy, source in programs.items())
    return Problem(DOMAIN, kind, text, "", solutions, tests=tests, fn_name=fn_name)


# ---------------------------------------------------------------- functional (fn_name)
def affine(rng: random.Random) -> Problem:
    a, b = rng.randint(2, 9), rng.randint(0, 20)
    q = rng.choice(
        [
            f"Write a function f(x) that returns {a} * x + {b}.",
            f"Define f(x) to return {a} times x plus {b}.",
            f"Write f(x), which gives {a}x + {b} for a number x.",
        ]
    )
    xs = [0, 1, rng.randint(2, 20)]
    programs = {
        "expression": f"def f(x):\n    return {a} * x + {b}",
        "loop": f"def f(x):\n    y = {b}\n    for _ in range({a}):\n        y += x\n    return y",
    }
    return _problem("affine", q, programs, _functional("f", [([x], a * x + b) for x in xs]), "f")


def count_multiples(rng: random.Random) -> Problem:
    k = rng.randint(2, 9)
    r = rng.randint(0, k - 1)
    what = f"are divisible by {k}" if r == 0 else f"leave remainder {r} when divided by {k}"
    q = rng.choice(
        [
            f"Write a function f(xs) that returns how many numbers in the list xs {what}.",
            f"Define f(xs) to count the numbers in the list xs that {what}.",
        ]
    )
    # one list told apart from every other remainder and divisor, then random ones, then none
    crafted = [r, k + r, 2 * k + (r + 1) % k, k * k + r]
    lists = [crafted] + [[rng.randint(0, 30) for _ in range(rng.randint(3, 7))] for _ in range(2)] + [[]]
    programs = {
        "generator": f"def f(xs):\n    return sum(1 for v in xs if v % {k} == {r})",
        "loop": f"def f(xs):\n    c = 0\n    for v in xs:\n        if v % {k} == {r}:\n            c += 1\n    return c",
        "filter": f"def f(xs):\n    return len([v for v in xs if v % {k} == {r}])",
    }
    tests = _functional("f", [([xs], sum(1 for v in xs if v % k == r)) for xs in lists])
    return _problem("count_multiples", q, programs, tests, "f")


def spread(rng: random.Random) -> Problem:
    """The largest element minus the smallest, plus a constant (so problems differ by number)."""
    c = rng.randint(0, 30)
    q = rng.choice(
        [
            f"Write a function f(xs) that returns the largest number in the list xs minus the smallest, plus {c}.",
            f"Define f(xs) to return max(xs) - min(xs) + {c} for a non-empty list xs.",
        ]
    )
    lists = [[rng.randint(-9, 30) for _ in range(rng.randint(1, 6))] for _ in range(3)]
    programs = {
        "builtins": f"def f(xs):\n    return max(xs) - min(xs) + {c}",
        "sort": f"def f(xs):\n    s = sorted(xs)\n    return s[-1] - s[0] + {c}",
    }
    return _problem(
        "spread", q, programs, _functional("f", [([xs], max(xs) - min(xs) + c) for xs in lists]), "f"
    )


# ---------------------------------------------------------------- stdin / stdout
def multiples_sum(rng: random.Random) -> Problem:
    k = rng.randint(1, 30)
    q = rng.choice(
        [
            f"Read an integer n and print the sum of the first n multiples of {k}.",
            f"Read n from standard input and print {k} + {2 * k} + ... + {k}n.",
        ]
    )
    ns = [1, rng.randint(2, 10), rng.randint(11, 60)]
    programs = {
        "formula": f"n = int(input())\nprint({k} * n * (n + 1) // 2)",
        "loop": f"n = int(input())\ns = 0\nfor i in range(1, n + 1):\n    s += {k} * i\nprint(s)",
    }
    return _problem(
        "multiples_sum", q, programs, _stdin([(f"{n}\n", f"{k * n * (n + 1) // 2}\n") for n in ns])
    )


def weighted_pair(rng: random.Random) -> Problem:
    p, r = rng.randint(2, 12), rng.randint(2, 12)
    q = rng.choice(
        [
            f"Read two integers a and b on one line and print {p} * a + {r} * b.",
            f"Given a and b on one input line, print {p}a + {r}b.",
        ]
    )
    pairs = [(1, 0), (0, 1), (rng.randint(-9, 20), rng.randint(-9, 20))]  # each weight alone, then both
    programs = {
        "unpack": f"a, b = map(int, input().split())\nprint({p} * a + {r} * b)",
        "index": f"parts = input().split()\na = int(parts[0])\nb = int(parts[1])\nprint(a * {p} + b * {r})",
    }
    return _problem(
        "weighted_pair", q, programs, _stdin([(f"{a} {b}\n", f"{p * a + r * b}\n") for a, b in pairs])
    )


CODE_GENERATORS: list[Callable[[random.Random], Problem]] = [
    affine,
    count_multiples,
    spread,
    multiples_sum,
    weighted_pair,
]
