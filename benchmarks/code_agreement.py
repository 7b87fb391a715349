"""The code reward against LiveCodeBench's official verdicts on real model-written programs.

    python benchmarks/code_agreement.py              # all 240 rows (about 2-3 minutes on 2 cores)
    python benchmarks/code_agreement.py --limit 24   # a seeded sample (the test's)

Reads ``tests/fixtures/real_outputs/code.jsonl.gz`` (real completions of six open models on
LiveCodeBench v6 problems, each with the official runner's verdict and the tests that verdict holds
on; tests/fixtures/real_outputs/SOURCES_CODE.md) and ``reviewed_code.jsonl`` (disagreements read by
hand). Prints agreement with the verdicts per harness (``lcb``, the default; ``script``).
Caveat from the fixture: each row carries a subset of the official tests, so a pass row cannot
catch a reward more lenient than the runner on hidden tests; every fail row carries the test it
officially failed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import time
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "real_outputs"


def load(limit: int = 0) -> tuple[list[dict], dict[str, dict]]:
    with gzip.open(FIXTURES / "code.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    if limit:  # stratified by verdict and style, seeded: both verdicts and both test styles
        rng = random.Random(0)
        groups: dict[tuple, list] = {}
        for r in rows:
            groups.setdefault((r["label"], r["fn_name"] is None), []).append(r)
        rows = [r for g in groups.values() for r in rng.sample(g, min(len(g), limit // len(groups)))]
    path = FIXTURES / "reviewed_code.jsonl"
    reviewed = {}
    if path.is_file():
        reviewed = {json.loads(x)["id"]: json.loads(x) for x in path.read_text().splitlines() if x.strip()}
    return rows, reviewed


def grade(rows: list[dict], harness: str = "lcb", concurrency: int = 2) -> list[float | None]:
    from ssp.reward import get_reward

    reward = get_reward("code_tests", harness=harness, max_concurrency=concurrency)
    return reward(
        [r["completion"] for r in rows],
        tests=[r["tests"] for r in rows],
        fn_name=[r["fn_name"] for r in rows],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--harness", nargs="+", default=["lcb", "script"])
    args = parser.parse_args()
    rows, reviewed = load(args.limit)
    print(f"{len(rows)} programs, {sum(r['label'] for r in rows)} officially passing")
    for harness in args.harness:
        start = time.monotonic()
        scores = grade(rows, harness)
        seconds = time.monotonic() - start
        dis = [r for r, s in zip(rows, scores, strict=True) if (s == 1.0) != r["label"]]
        print(
            f"harness {harness}: disagrees with the official verdict on {len(dis)} of {len(rows)} "
            f"({100 * len(dis) / len(rows):.1f}%), {len(rows) / seconds:.1f} programs/s"
        )
        for r in dis:
            note = reviewed.get(r["id"], {}).get("why", "not reviewed")
            print(
                f"  {r['id']}: official {'pass' if r['label'] else 'fail'} ({r['official_error_code']}): {note}"
            )


if __name__ == "__main__":
    main()
