"""Decontamination on real MATH problems against MATH-500 + AIME 2024 + AIME 2025: what it flags, what it
misses, how fast.

    python benchmarks/decontamination_real.py [--train MATH_TRAIN.jsonl] [--n 10 --similarity 1.15 ...]

The pool is the 5,000 MATH test problems of tests/fixtures/decontamination/ (500 of them are the
MATH-500 problems themselves) plus the fixture's 160 planted copies, each row with its hand label;
``--train`` adds MATH train problems (a JSONL with a ``problem`` field, unlabelled: every one it
flags is listed for reading). Prints flagged rows by rule and by label, planted copies caught by
kind and strength, false alarms (flagged rows labelled clean), and rows per second of ``match``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FIXTURE = (
    Path(__file__).resolve().parents[1] / "tests/fixtures/decontamination/math_test_vs_benchmarks.jsonl.gz"
)


def main() -> None:
    from ssp.data_pipeline.decontaminate import Decontaminator

    a = argparse.ArgumentParser()
    a.add_argument("--train", type=Path, help="MATH train problems (JSONL, field 'problem'), unlabelled")
    a.add_argument("--n", type=int, default=10)
    a.add_argument("--similarity", type=float, default=1.15)
    a.add_argument("--numbers-kept", type=float, default=0.99)
    a.add_argument("--number-weight", type=float, default=0.08)
    args = a.parse_args()
    rows = [json.loads(line) for line in gzip.open(FIXTURE, "rt", encoding="utf-8")]
    bench = [r for r in rows if r["role"] == "benchmark"]
    pool = [r for r in rows if r["role"] != "benchmark"]
    if args.train:
        lines = args.train.read_text().splitlines()
        pool += [
            {
                "role": "pool",
                "id": f"math_train/{i}",
                "problem": json.loads(line)["problem"],
                "truth": "unread",
            }
            for i, line in enumerate(lines)
            if line.strip()
        ]
    d = Decontaminator(args.n, args.similarity, args.numbers_kept, args.number_weight)
    for r in bench:
        d.add(r["benchmark"], r["id"], r["problem"])
    t0 = time.perf_counter()
    d.fit(r["problem"] for r in pool)
    t1 = time.perf_counter()
    found = {r["id"]: d.match(r["problem"]) for r in pool}
    t2 = time.perf_counter()
    real = [r for r in pool if r["role"] == "pool"]
    flagged = [r for r in real if found[r["id"]]]
    print(f"benchmarks: {Counter(r['benchmark'] for r in bench)}")
    print(f"real rows: {len(real)}; flagged: {len(flagged)} ({100 * len(flagged) / len(real):.2f}%)")
    print(f"  by rule: {dict(Counter(found[r['id']].rule for r in flagged))}")
    print(f"  by label: {dict(Counter(r['truth'] for r in flagged))}")
    false = [r for r in flagged if r["truth"] == "clean"]
    print(
        f"false alarms (flagged, labelled clean): {len(false)} ({100 * len(false) / len(real):.2f}% of real rows)"
    )
    missed = [r for r in real if r["truth"] in ("verbatim", "numbers", "reworded") and not found[r["id"]]]
    print(f"labelled copies missed: {len(missed)}")
    caught, total = Counter(), Counter()
    for r in pool:
        if r["role"] == "plant":
            key = r["kind"] if r["kind"] != "reworded" else f"reworded {r['strength']}"
            total[key] += 1
            m = found[r["id"]]
            caught[key] += bool(m and [m.benchmark, m.benchmark_id] == r["of"])
    print(
        "planted copies caught (right benchmark problem): "
        + ", ".join(f"{k} {caught[k]}/{total[k]}" for k in total)
    )
    print(f"speed: fit {len(pool) / (t1 - t0):,.0f} rows/s, match {len(pool) / (t2 - t1):,.0f} rows/s")
    for r in flagged:
        if r["truth"] in ("unread", "clean"):
            m = found[r["id"]]
            print(
                f"  [{r['truth']}] {r['id']} {m.rule} {m.score} -> {m.benchmark}/{m.benchmark_id}: {r['problem'][:90]!r}"
            )


if __name__ == "__main__":
    main()
