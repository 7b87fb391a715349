"""Reward throughput, measured side by side in one run.

    python benchmarks/rewards.py            # ~1 minute on 2 cores

1. math_correctness (process pool, hard timeouts) against calling math-verify directly in
   this process, on the same realistic mix of completions: answers/s and the ratio.
2. The code sandbox against a bare subprocess running the same trivial program:
   executions/s and the overhead ratio; code_tests with its default concurrency.
3. The pool's fixed costs: seconds until a new reward's workers have scored their first item
   (fresh interpreters importing math-verify), and what one hung item costs a batch (its
   timeout, plus nothing for the replacement's start-up, which overlaps the other items).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from ssp.reward import get_reward  # noqa: E402
from ssp.reward.code_tests import with_prelude  # noqa: E402
from ssp.reward.sandbox import Limits, interpreter, isolation, run_python  # noqa: E402


def math_mix(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Completions like a reasoning model's: mostly boxed integers, some fractions, radicals,
    intervals, wrong answers, unboxed endings and long chains of thought."""
    rng = random.Random(seed)
    golds, comps = [], []
    for _ in range(n):
        kind = rng.random()
        pad = "Let us think. " * rng.choice([5, 20, 150])
        if kind < 0.5:
            g = str(rng.randint(-500, 500))
            p = g if rng.random() < 0.6 else str(int(g) + rng.randint(1, 9))
            golds.append(g)
            comps.append(f"{pad} so the answer is \\boxed{{{p}}}.")
        elif kind < 0.7:
            a, b = rng.randint(1, 9), rng.randint(2, 12)
            golds.append(f"\\frac{{{a}}}{{{b}}}")
            comps.append(f"{pad} \\boxed{{{a / b if rng.random() < 0.5 else a + 1}}}")
        elif kind < 0.8:
            k = rng.randint(2, 9)
            golds.append(f"\\sqrt{{{4 * k}}}")
            comps.append(f"{pad} \\boxed{{2\\sqrt{{{k}}}}}")
        elif kind < 0.9:
            lo = rng.randint(-5, 5)
            golds.append(f"[{lo}, {lo + 3})")
            comps.append(f"{pad} \\boxed{{[{lo},{lo + 3})}}")
        else:
            g = str(rng.randint(1, 99))
            golds.append(g)
            comps.append(f"{pad} The final answer is {g}.")
    return golds, comps


def direct_math_verify(golds: list[str], comps: list[str]) -> list[float]:
    from math_verify import parse, verify

    return [float(verify(parse(f"${g}$"), parse(c))) for g, c in zip(golds, comps, strict=True)]


def bench_math(n: int = 400) -> None:
    golds, comps = math_mix(n)
    reward = get_reward("math_correctness", workers=os.cpu_count())
    reward(comps[:8], answer=golds[:8])  # start the workers outside the timing
    t = time.perf_counter()
    ours = reward(comps, answer=golds)
    ours_s = time.perf_counter() - t
    t = time.perf_counter()
    direct = direct_math_verify(golds, comps)
    direct_s = time.perf_counter() - t
    reward.close()
    agree = sum(a == b for a, b in zip(ours, direct, strict=True)) / n
    print(f"math_correctness: {n / ours_s:8.1f} answers/s ({reward.workers} workers)")
    print(f"math-verify direct, one process: {n / direct_s:8.1f} answers/s")
    print(f"ratio (pool / direct): {direct_s / ours_s:.2f}x   score agreement: {agree:.3f}")


def bench_sandbox(n: int = 60) -> None:
    """Per-execution cost, interleaved (bare, sandbox, sandbox + prelude, bare, ...) so that the
    machine's noise hits all three alike; medians of each."""
    import statistics

    src = "print(input())"
    limits = Limits()
    python = interpreter()[0]  # the same interpreter in and out of the sandbox

    def bare(i):
        return subprocess.run(
            [python, "-I", "-c", src], input=f"{i}\n", capture_output=True, text=True
        ).stdout

    ways = {
        "bare": bare,
        "sandbox": lambda i: run_python(src, f"{i}\n", limits).stdout,
        "prelude": lambda i: run_python(with_prelude(src), f"{i}\n", limits).stdout,
    }
    times: dict[str, list[float]] = {k: [] for k in ways}
    for i in range(n + 1):
        for name, run in ways.items():
            t = time.perf_counter()
            assert run(i) == f"{i}\n", name
            if i:  # the first round warms caches
                times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    print(
        f"per execution of print(input()), median of {n}: bare {python} -I {med['bare']:.1f} ms, sandbox "
        f"{med['sandbox']:.1f} ms ({med['sandbox'] / med['bare']:.2f}x), sandbox + LiveCodeBench prelude "
        f"{med['prelude']:.1f} ms ({med['prelude'] / med['sandbox']:.2f}x the sandbox)"
    )
    print(f"isolation: {', '.join(k for k, v in isolation().items() if v)}")
    reward = get_reward("code_tests")
    completion = "```python\nprint(input())\n```"
    tests = [[{"testtype": "stdin", "input": f"{i}", "output": f"{i}"}] for i in range(n)]
    t = time.perf_counter()
    scores = reward([completion] * n, tests=tests)
    ct_s = time.perf_counter() - t
    assert scores == [1.0] * n
    print(f"code_tests (max_concurrency={reward.max_concurrency}): {n / ct_s:6.1f} executions/s")


def bench_pool(n: int = 200, timeout: float = 2.0) -> None:
    golds, comps = math_mix(n, seed=1)
    t = time.perf_counter()
    reward = get_reward("math_correctness", workers=os.cpu_count(), timeout=timeout, max_failure_rate=0.5)
    reward(comps[:1], answer=golds[:1])
    start_s = time.perf_counter() - t
    t = time.perf_counter()
    reward(comps, answer=golds)
    clean_s = time.perf_counter() - t
    hang = "\\boxed{" + "9^" * 40 + "9}"
    t = time.perf_counter()
    scores = reward([hang, *comps[1:]], answer=golds)
    hung_s = time.perf_counter() - t
    assert scores[0] is None and reward.last.statuses[0] == "timeout"
    reward.close()
    print(f"pool start-up to the first score ({reward.workers} workers): {start_s:.2f} s")
    print(
        f"{n} items: {clean_s:.2f} s; the same with one item hung (timeout {timeout:g} s): {hung_s:.2f} s "
        f"(+{hung_s - clean_s:.2f} s)"
    )


if __name__ == "__main__":
    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}")
    bench_math()
    bench_sandbox()
    bench_pool()
