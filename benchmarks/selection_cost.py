"""What diversity selection costs per problem, on a build's real teacher shards.

    python benchmarks/selection_cost.py runs/samples/teacher/<plan>/ [--m 3] [--repeat 5]

Reads the shard files a teacher step wrote (``data_pipeline/teacher.py``) and times, per problem,
building its correct pool and picking m solutions with each method (``data_pipeline/diversity.py``),
best of ``--repeat`` passes over all problems. Prints microseconds per problem, overall and for the
problems whose pool holds more than m solutions (the only ones where maxmin does any work), and the
largest pool. maxmin is quadratic in the pool size (all pairwise divergences), so the cost at the
recipe's n_samples is what matters; pools of a 16-sample teacher hold at most 16.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from ssp.core.corpus import iter_jsonl
    from ssp.data_pipeline.diversity import METHODS, correct_pool, pick

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("shards", type=Path, help="a folder of shard-*.jsonl files")
    ap.add_argument("--m", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    paths = sorted(args.shards.glob("shard-*.jsonl"))
    if not paths:
        raise SystemExit(f"{args.shards}: no shard-*.jsonl files")
    rows = [r["samples"] for p in paths for r in iter_jsonl(p)]
    pools = [correct_pool(s) for s in rows]
    big = [s for s, p in zip(rows, pools, strict=True) if len(p) > args.m]
    print(
        f"{len(rows)} problems, {sum(map(len, rows))} samples; {len(big)} pools hold more than "
        f"m={args.m} (largest {max(map(len, pools))})"
    )
    for method in METHODS:
        for label, subset in (("all problems", rows), (f"pools > {args.m}", big)):
            if not subset:
                continue
            best = float("inf")
            for _ in range(args.repeat):
                t = time.perf_counter()
                for samples in subset:
                    pick(correct_pool(samples), args.m, method, seed=0)
                best = min(best, time.perf_counter() - t)
            print(f"{method:>7} {label:>14}: {1e6 * best / len(subset):8.1f} us per problem")


if __name__ == "__main__":
    main()
