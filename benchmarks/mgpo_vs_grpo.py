"""Experiment: MGPO (lambda > 0) against GRPO (lambda = 0) on the tiny task, several seeds.

    python benchmarks/mgpo_vs_grpo.py runs/tiny [--recipe recipes/tiny.yaml] [--lams 0 4] [--seeds 0 1 2] [--steps 30]

A use of ``ssp sweep`` (``launch/sweep.py``), not a mechanism of its own: the arms are
``rl.lam`` x seeds, the seed offsets ``rl.seed`` only (rollouts and data order), and the sweep
branches from RUN (``make demo``'s run folder): its data, SFT, probe and merge stages are shared,
not re-run, when the recipe is the same, so every arm starts RL from RUN's spectrum model. Each arm
runs RL for ``--steps`` steps and the eval stage on the spectrum and signal models (the report's
protocol, same sampling seed for every model). The comparison (means, 95% intervals over seeds,
paired deltas against lambda = 0, pass@1 against lambda, reward and MGPO-weight curves) is
``runs/<RUN>-mgpo-vs-grpo/compare/``; re-running resumes. Equivalent command:

    ssp sweep recipes/tiny.yaml "rl.phases[0].max_steps=30" "eval.models=[spectrum,signal]" \\
        --grid rl.lam=0,4 --seeds 0,1,2 --seed-keys rl.seed --from runs/tiny
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir", type=Path, help="the run to branch from (its spectrum model is RL's start)")
    p.add_argument("--recipe", type=Path, default=Path("recipes/tiny.yaml"))
    p.add_argument("--lams", type=float, nargs="+", default=[0.0, 4.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more recipe overrides")
    p.add_argument("--name", default="", help="sweep folder (default <RUN>-mgpo-vs-grpo)")
    args = p.parse_args()
    from ssp.launch.logs import setup_logging
    from ssp.launch.sweep import run_sweep

    setup_logging()
    folder = run_sweep(
        args.recipe,
        {"rl.lam": args.lams},
        args.seeds,
        [
            f"output_root={args.run_dir.parent}",
            f"run_name={args.run_dir.name}",
            f"rl.phases[0].max_steps={args.steps}",
            f"rl.save_every={args.steps}",
            "eval.models=[spectrum,signal]",
            *args.set,
        ],
        name=args.name or f"{args.run_dir.name}-mgpo-vs-grpo",
        seed_keys=("rl.seed",),
        donors=[args.run_dir],
    )
    print((folder / "compare" / "compare.md").read_text())


if __name__ == "__main__":
    main()
