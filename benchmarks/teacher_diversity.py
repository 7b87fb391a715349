"""Does max-min selection keep more different solutions than random-m on a real teacher's samples?

    python benchmarks/teacher_diversity.py runs/tiny [--checkpoint runs/tiny/sft/checkpoints/checkpoint-856]
        [--n 8 --m 3 --max-new-tokens 96 --seed 0]

The teacher is the tiny task's SFT model (``make demo`` trains it; it learned 2-3 solution
strategies per problem type). It samples ``n`` solutions for each of the run's RL prompts
(held out from its SFT data) through the project's own sharded, verified sampler
(``data_pipeline/teacher.py``, transformers backend, math_correctness reward). On the pools of
correct, finished, distinct solutions with more than ``m`` members, three ways to keep ``m``:

- ``maxmin``: ``data_pipeline/diversity.py`` (greedy farthest point over 1 - word-trigram Jaccard);
- ``random``: m drawn at random (mean over 20 seeds);
- ``first``: the first m correct samples (what "keep the verified traces" pipelines do).

Two measures per kept set: the mean pairwise divergence the selection maximises, and the number
of distinct *strategies* among the kept solutions, which the selection never sees: a sample's
strategy is read from its opening words, matched against the openings of the run's own SFT
solutions, whose strategy the tiny task records. Unmatched openings count as "other".
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _opening(text: str) -> tuple[str, ...]:
    from ssp.data_pipeline.text import masked_words

    return masked_words(text)[:3]


def strategy_reader(sft_file: Path):
    """opening words -> the strategy of the SFT solutions that open with them (majority)."""
    votes: dict[tuple[str, ...], Counter] = defaultdict(Counter)
    for line in sft_file.read_text().splitlines():
        row = json.loads(line)
        for text, strategy in zip(row["solutions"], row.get("strategies") or [], strict=False):
            votes[_opening(text)][strategy] += 1
    table = {k: c.most_common(1)[0][0] for k, c in votes.items()}
    return lambda text: table.get(_opening(text), "other")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--m", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/teacher-diversity"))
    args = ap.parse_args()

    from ssp.core.corpus import iter_jsonl, load_rows
    from ssp.data_pipeline.diversity import correct_pool, mean_pairwise_divergence, pick
    from ssp.data_pipeline.teacher import sample_shards, verification_counts
    from ssp.reward.config import make_reward
    from ssp.sampling.generation import HFGenerator, SamplingParams

    manifest = json.loads((args.run / "manifest.json").read_text())
    checkpoint = args.checkpoint or Path(manifest["stages"]["sft"]["outputs"]["checkpoints"][-1])
    rows = load_rows(args.run / "data" / "rl.jsonl", ("id", "domain", "problem", "answer"), "rl")
    strategy = strategy_reader(args.run / "data" / "sft.jsonl")
    params = SamplingParams(
        n=args.n, temperature=1.0, top_p=1.0, max_new_tokens=args.max_new_tokens, seed=args.seed
    )
    reward = make_reward("math_correctness", {}, "benchmark")
    try:
        paths = sample_shards(
            rows,
            args.out / f"seed{args.seed}",
            lambda: HFGenerator(checkpoint),
            reward,
            params,
            64,
            str(checkpoint),
        )
    finally:
        reward.close()

    counts = verification_counts(paths)
    print(f"teacher {checkpoint}, {len(rows)} RL prompts x {args.n} samples, seed {args.seed}")
    for d, c in counts.items():
        print(f"  {d:14s} pass rate {c['pass_rate']:.3f}, solved {c['solved']}/{c['problems']}")

    measures: dict[str, dict[str, list[float]]] = {
        k: {"div": [], "strategies": []} for k in ("maxmin", "random", "first")
    }
    pools = 0
    ceiling: list[int] = []  # the most distinct strategies any m of the pool could have
    for path in paths:
        for row in iter_jsonl(path):
            pool = correct_pool(row["samples"])
            if len(pool) <= args.m:
                continue
            pools += 1
            chosen = {
                "maxmin": [pick(pool, args.m, "maxmin")],
                "random": [pick(pool, args.m, "random", seed=s) for s in range(20)],
                "first": [pool[: args.m]],
            }
            ceiling.append(min(args.m, len({strategy(s["text"]) for s in pool})))
            for name, sets in chosen.items():
                measures[name]["div"].append(
                    statistics.mean(mean_pairwise_divergence([s["text"] for s in k]) for k in sets)
                )
                measures[name]["strategies"].append(
                    statistics.mean(len({strategy(s["text"]) for s in k}) for k in sets)
                )
    print(f"pools with more than m={args.m} correct distinct solutions: {pools}")
    print(f"{'selection':10s} {'mean pairwise divergence':>26s} {'distinct strategies of m':>26s}")
    for name, v in measures.items():
        if v["div"]:
            print(f"{name:10s} {statistics.mean(v['div']):26.3f} {statistics.mean(v['strategies']):26.3f}")
    if ceiling:
        print(
            f"{'ceiling':10s} {'':>26s} {statistics.mean(ceiling):26.3f}  (most distinct strategies m of the pool hold)"
        )
        for other in ("random", "first"):
            for key, label in (("div", "divergence"), ("strategies", "strategies")):
                diffs = [a - b for a, b in zip(measures["maxmin"][key], measures[other][key], strict=True)]
                se = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else float("nan")
                print(
                    f"maxmin - {other:6s} {label:10s}: {statistics.mean(diffs):+.3f} (paired SE over pools {se:.3f})"
                )
    known = sum(
        strategy(s["text"]) != "other"
        for p in paths
        for r in iter_jsonl(p)
        for s in r["samples"]
        if s["score"] == 1.0
    )
    total = sum(s["score"] == 1.0 for p in paths for r in iter_jsonl(p) for s in r["samples"])
    print(f"correct samples whose strategy the opening words name: {known}/{total}")


if __name__ == "__main__":
    main()
