"""Step time of MGPOTrainer against plain GRPOTrainer: same model, data, config and seed.

    python benchmarks/mgpo_step_time.py runs/tiny/merge/model runs/tiny/data/rl.jsonl [--steps 12] [--rounds 4]

Rounds alternate the order (GRPO then MGPO, then MGPO then GRPO, ...): a first run of a round
pays warm-up costs, and a fixed order showed MGPO 13% "faster" for that reason alone; the
first step of each run (model load, worker start) is left out of the mean.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(kind: str, model: str, rows: list[dict], steps: int) -> list[float]:
    import datasets
    from trl import GRPOConfig, GRPOTrainer

    from ssp.reward import get_reward
    from ssp.train.mgpo import MGPOConfig, MGPOTrainer

    ds = datasets.Dataset.from_list(
        [{"prompt": [{"role": "user", "content": r["problem"]}], "answer": r["answer"]} for r in rows]
    )
    reward = get_reward("math_correctness", workers=2)
    common = dict(
        output_dir=tempfile.mkdtemp(),
        max_steps=steps,
        per_device_train_batch_size=16,
        num_generations=8,
        max_completion_length=96,
        learning_rate=1e-4,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        seed=0,
        data_seed=0,
    )
    if kind == "grpo":
        trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=GRPOConfig(**common), train_dataset=ds)
    else:
        trainer = MGPOTrainer(
            model=model, reward_funcs=[reward], args=MGPOConfig(**common, mgpo_lambda=4.0), train_dataset=ds
        )
    try:
        trainer.train()
    finally:
        reward.close()
    return [h["step_time"] for h in trainer.state.log_history if "step_time" in h][1:]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("prompts")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    rows = [json.loads(line) for line in open(args.prompts)]
    times = {"grpo": [], "mgpo": []}
    for round_ in range(args.rounds):
        for kind in ("grpo", "mgpo") if round_ % 2 == 0 else ("mgpo", "grpo"):  # order effects cancel
            times[kind] += run(kind, args.model, rows, args.steps)
    g, m = statistics.mean(times["grpo"]), statistics.mean(times["mgpo"])
    print(
        f"GRPOTrainer: {g:.3f} s/step (median {statistics.median(times['grpo']):.3f}, n={len(times['grpo'])})"
    )
    print(
        f"MGPOTrainer: {m:.3f} s/step (median {statistics.median(times['mgpo']):.3f}, n={len(times['mgpo'])})"
    )
    print(
        f"ratio MGPO / GRPO: mean {m / g:.3f}, median {statistics.median(times['mgpo']) / statistics.median(times['grpo']):.3f}"
    )


if __name__ == "__main__":
    main()
