"""What each filter rule drops on real MATH-layout rows, each rule applied on its own, with a sample of
its drops printed for reading (docs/data.md, "Measured on real data" under Filters).

    python benchmarks/filters_real.py MATH_TEST.jsonl [MATH_TRAIN.jsonl ...] [--rule figure --show 40]

Rows need ``problem`` and ``solution`` (the answer is the solution's last ``\\boxed``, as the build's
``answer_from_solution`` reads it).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from ssp.data_pipeline.build import DEFAULT_FILTERS
    from ssp.data_pipeline.filters import RULES, Limits
    from ssp.reward.math_answer import extract_boxed

    a = argparse.ArgumentParser()
    a.add_argument("files", nargs="+", type=Path)
    a.add_argument("--rule", help="print a sample of this rule's drops")
    a.add_argument("--show", type=int, default=20)
    args = a.parse_args()
    rows = []
    for path in args.files:
        for i, line in enumerate(path.read_text().splitlines()):
            if line.strip():
                r = json.loads(line)
                answer = extract_boxed(r["solution"]) or ""
                rows.append(
                    {
                        "id": f"{path.stem}/{i}",
                        "problem": r["problem"],
                        "solution": r["solution"],
                        "answer": answer,
                    }
                )
    drops = defaultdict(list)
    for r in rows:
        for name in DEFAULT_FILTERS + ["asy"]:
            if name != "where" and (why := RULES[name](r, Limits())):
                drops[name].append((r, why))
    print(f"{len(rows)} rows; drops per rule, each on its own: { ({k: len(v) for k, v in drops.items()}) }")
    if args.rule:
        sample = drops[args.rule][:]
        random.Random(0).shuffle(sample)
        for r, why in sample[: args.show]:
            print(f"--- {r['id']} | {why} | answer {r['answer'][:60]!r}\n{r['problem'][:600]}")


if __name__ == "__main__":
    main()
