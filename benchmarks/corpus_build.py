"""Rows per second of the corpus builder's whole chain (read, filter, dedup, decontaminate, label,
split, card) on this machine.

    python benchmarks/corpus_build.py [--rows 50000] [--benchmark-problems 530] [--out /tmp/corpus-bench]

The source is synthetic, in NuminaMath-1.5's layout (a folder with data/train-00000-of-00001.parquet,
read through ``datasets`` as a hub copy would be): the clean rows of the hand-written fixture
(tests/fixtures/corpus/numinamath_1p5.jsonl) with every number redrawn and a sentence of 12 random
(made-up) words prepended, so that rows are distinct for deduplication; 30% of rows lose their label (the
classifier labels them). The benchmark set decontaminated against is made the same way from the
MATH fixture's problems (530 problems = MATH-500 + AIME24 + AIME25's sizes), so few rows match. Prints seconds per step and rows/s.

    python benchmarks/corpus_build.py --math MATH_TEST.jsonl --math MATH_TRAIN.jsonl [--math ...]

Real data instead: each ``--math`` file (MATH's layout: problem, solution, type or subject) is a source,
decontaminated against the real MATH-500 + AIME 2024 + AIME 2025 of tests/fixtures/decontamination/.
Naming a file twice (as two sources) makes the second one all duplicates, which adds rows read.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "corpus" / "numinamath_1p5.jsonl"
WORDS = [
    f"{a}{b}"
    for a in ("ka", "lo", "mi", "nu", "ra", "se", "ti", "vo")
    for b in ("b", "d", "g", "m", "n", "p", "r", "s", "t", "z")
]


def _variant(row: dict, rng: random.Random) -> dict:
    problem = re.sub(r"\d+", lambda m: str(rng.randint(2, 999)), row["problem"])
    intro = " ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + "."
    return {**row, "problem": f"{intro} {problem}", "answer": str(rng.randint(1, 999))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--benchmark-problems", type=int, default=530)
    ap.add_argument("--out", default="/tmp/corpus-bench")
    ap.add_argument(
        "--math", action="append", default=[], help="a real MATH-layout JSONL source (repeatable)"
    )
    args = ap.parse_args()
    if args.math:
        return _real(args)

    import datasets

    from ssp.data_pipeline.build import BuildOptions, Plan, build_pool
    from ssp.data_pipeline.sources import Source

    rng = random.Random(0)
    clean = [json.loads(line) for line in FIXTURE.read_text().splitlines()][:25]  # the unplanted rows
    out = Path(args.out)
    folder = out / "numina"
    (folder / "data").mkdir(parents=True, exist_ok=True)
    rows = []
    for _ in range(args.rows):
        row = _variant(rng.choice(clean), rng)
        if rng.random() < 0.3:
            row["problem_type"] = ""
        rows.append(row)
    datasets.Dataset.from_list(rows).to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    others = [
        json.loads(line) for line in (FIXTURE.parent / "math_hendrycks.jsonl").read_text().splitlines()
    ][:16]
    bench = [(str(i), _variant(rng.choice(others), rng)["problem"]) for i in range(args.benchmark_problems)]
    del rows

    source = Source(
        name="numina",
        path=str(folder),
        fields={"solution": "solution", "label": "problem_type", "question_type": "question_type"},
        label_map={
            "Algebra": "algebra",
            "Inequalities": "algebra",
            "Geometry": "geometry",
            "Calculus": "calculus",
            "Combinatorics": "statistics",
            "Number Theory": None,
        },
    )
    plan = Plan(
        [source],
        BuildOptions(),
        ["algebra", "geometry", "calculus", "statistics"],
        {"eval": 32, "probe": 32, "rl": 64},
        0,
        1234,
        {"bench": bench},
    )
    work = out / "data"
    if work.exists():
        import shutil

        shutil.rmtree(work)
    start = time.perf_counter()
    card = build_pool(plan, work, "bench").card
    total = time.perf_counter() - start
    print(f"rows in: {args.rows}; benchmark problems: {args.benchmark_problems}")
    for step, sec in card["step_seconds"].items():
        print(f"  {step:14s} {sec:8.1f} s  {args.rows / max(sec, 1e-9):10.0f} rows/s")
    kept = sum(sum(c.values()) for c in card["splits"].values())
    print(
        f"whole chain incl. card: {total:.1f} s = {args.rows / total:.0f} rows/s; rows kept {kept}; "
        f"near/exact duplicates {card['sources']['numina']['duplicates']}; "
        f"contaminated {card['sources']['numina']['contaminated']}; "
        f"classifier accuracy {card['labels']['classifier'].get('accuracy')}"
    )
    import resource

    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def _real(args) -> None:
    import gzip

    from ssp.data_pipeline.build import BuildOptions, Plan, build_pool
    from ssp.data_pipeline.sources import Source

    fixture = ROOT / "tests" / "fixtures" / "decontamination" / "math_test_vs_benchmarks.jsonl.gz"
    rows = [json.loads(line) for line in gzip.open(fixture, "rt", encoding="utf-8")]
    bench: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        if r["role"] == "benchmark":
            bench.setdefault(r["benchmark"], []).append((r["id"], r["problem"]))
    subjects = json.loads((fixture.parent / "math_subjects.json").read_text())  # shared with the labels test
    label_map = {k: v for k, v in subjects.items() if k[0] != "_"}
    sources, n = [], 0
    for i, path in enumerate(args.math):
        first = json.loads(Path(path).open().readline())
        n += sum(1 for line in Path(path).open() if line.strip())
        label = "type" if "type" in first else "subject"
        fields = {"problem": "problem", "solution": "solution", "label": label}
        sources.append(
            Source(name=f"math{i}", path=path, fields=fields, answer_from_solution=True, label_map=label_map)
        )
    plan = Plan(
        sources,
        BuildOptions(),
        ["algebra", "counting", "geometry", "number_theory"],
        {"eval": 32, "probe": 32, "rl": 64},
        0,
        1234,
        bench,
    )
    work = Path(args.out) / "real"
    if work.exists():
        import shutil

        shutil.rmtree(work)
    start = time.perf_counter()
    card = build_pool(plan, work, "bench-real").card
    total = time.perf_counter() - start
    print(
        f"rows in: {n} real MATH rows from {len(sources)} sources; benchmark problems: "
        f"{sum(map(len, bench.values()))}"
    )
    for step, sec in card["step_seconds"].items():
        print(f"  {step:14s} {sec:8.1f} s  {n / max(sec, 1e-9):10.0f} rows/s")
    kept = sum(sum(c.values()) for c in card["splits"].values())
    per = {name: (s["duplicates"], s["contaminated"], s["filtered"]) for name, s in card["sources"].items()}
    print(
        f"whole chain incl. card: {total:.1f} s = {n / total:.0f} rows/s; rows kept {kept}; per source "
        f"(duplicates, contaminated, filtered): {per}; labels: {card['labels']['dropped']}"
    )


if __name__ == "__main__":
    main()
