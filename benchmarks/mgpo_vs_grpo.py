"""Experiment: MGPO (lambda > 0) against GRPO (lambda = 0) on the tiny task, several seeds.

    python benchmarks/mgpo_vs_grpo.py runs/tiny [--recipe recipes/tiny.yaml] [--lams 0 4] [--seeds 0 1 2] [--steps 30]

Starts every run from the same spectrum model (``RUN/merge/model``, from ``make demo``) with
the recipe's RL phase, equal steps, and the seed changing rollouts and data order. Held-out
Pass@1 and Pass@k use the probe's sampling settings (same seed for every model, so models are
compared on equal terms). Writes ``RUN/experiments/mgpo_vs_grpo.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _recipe(path: Path, run_dir: Path, *overrides: str):
    from config.recipe import load_recipe

    return load_recipe(path, [f"output_root={run_dir.parent}", f"run_name={run_dir.name}", *overrides])


def one_run(
    recipe_path: Path,
    run_dir: Path,
    lam: float,
    seed: int,
    steps: int,
    out: Path,
    extra: tuple[str, ...] = (),
) -> dict:
    from core.context import StageContext
    from core.manifest import Manifest
    from stages import rl

    manifest = Manifest(run_dir)
    recipe = _recipe(
        recipe_path,
        run_dir,
        f"rl.lam={lam}",
        f"rl.seed={seed}",
        "rl.eval_heldout=false",
        f"rl.phases[0].max_steps={steps}",
        f"rl.save_every={steps}",
        *extra,
    )
    ctx = StageContext(
        name="rl",
        run_dir=run_dir,
        stage_dir=out,
        inputs={"data": manifest.stage("data")["outputs"], "merge": manifest.stage("merge")["outputs"]},
    )
    start = time.monotonic()
    result = rl.run(recipe, ctx)
    history = json.loads((Path(result.outputs["model"]).parent / "log_history.json").read_text())
    curve = [h["reward"] for h in history if "reward" in h and "step" in h]
    return {
        "lam": lam,
        "seed": seed,
        "model": result.outputs["model"],
        "curve": curve,
        "seconds": time.monotonic() - start,
    }


def heldout(recipe_path: Path, run_dir: Path, models: dict[str, str]) -> dict:
    from core.context import StageContext
    from core.manifest import Manifest
    from stages.shared import heldout_comparison

    recipe = _recipe(recipe_path, run_dir)
    ctx = StageContext(
        name="exp",
        run_dir=run_dir,
        stage_dir=run_dir,
        inputs={"data": Manifest(run_dir).stage("data")["outputs"]},
    )
    return heldout_comparison(recipe, ctx, models)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir", type=Path)
    p.add_argument("--recipe", type=Path, default=Path("recipes/tiny.yaml"))
    p.add_argument("--lams", type=float, nargs="+", default=[0.0, 4.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more recipe overrides")
    p.add_argument("--name", default="mgpo_vs_grpo", help="output file stem under RUN/experiments/")
    args = p.parse_args()
    from core.manifest import Manifest

    out_dir = args.run_dir / "experiments"
    runs = []
    for lam in args.lams:
        for seed in args.seeds:
            r = one_run(
                args.recipe,
                args.run_dir,
                lam,
                seed,
                args.steps,
                out_dir / args.name / f"lam{lam:g}-seed{seed}",
                tuple(args.set),
            )
            print(
                f"lambda={lam:g} seed={seed}: {r['seconds']:.0f} s, mean reward first/last 5 steps "
                f"{statistics.mean(r['curve'][:5]):.3f} / {statistics.mean(r['curve'][-5:]):.3f}",
                flush=True,
            )
            runs.append(r)
    spectrum = Manifest(args.run_dir).stage("merge")["outputs"]["model"]
    models = {"spectrum": spectrum, **{f"lam{r['lam']:g}-seed{r['seed']}": r["model"] for r in runs}}
    scores = heldout(args.recipe, args.run_dir, models)
    for r in runs:
        r["heldout"] = scores[f"lam{r['lam']:g}-seed{r['seed']}"]["pass"]["all"]
    summary = {
        "spectrum": scores["spectrum"]["pass"]["all"],
        "runs": runs,
        "steps": args.steps,
        "overrides": args.set,
    }
    (out_dir / f"{args.name}.json").write_text(json.dumps(summary, indent=2))
    keys = list(summary["spectrum"])
    from core.tables import markdown_table

    def mean_sd(rows, k):
        values = [r["heldout"][k] for r in rows]
        return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0:.3f}"

    summary_rows = [["spectrum (before RL)", *(f"{summary['spectrum'][k]:.3f}" for k in keys)]]
    for lam in args.lams:
        rows = [r for r in runs if r["lam"] == lam]
        label = f"lambda = {lam:g}{' (GRPO)' if lam == 0 else ' (MGPO)'}"
        summary_rows.append([label, *(mean_sd(rows, k) for k in keys)])
    per_seed = [
        [f"{r['lam']:g}", r["seed"], *(f"{r['heldout'][k]:.3f}" for k in keys), f"{r['seconds']:.0f}"]
        for r in runs
    ]
    lines = [
        f"Held-out Pass@k after {args.steps} RL steps from the same spectrum model "
        f"(mean ± sd over seeds {args.seeds})",
        "",
        markdown_table(["model", *keys], summary_rows),
        "",
        "Per seed:",
        "",
        markdown_table(["lambda", "seed", *keys, "seconds"], per_seed),
    ]
    lines.insert(1, f"Overrides: {args.set or 'none'}")
    (out_dir / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _plot(runs, out_dir / f"{args.name}.png")


def _plot(runs: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    colours = {}
    for r in runs:
        c = colours.setdefault(r["lam"], f"C{len(colours)}")
        smooth = [statistics.mean(r["curve"][max(0, i - 4) : i + 1]) for i in range(len(r["curve"]))]
        ax.plot(
            range(1, len(smooth) + 1),
            smooth,
            color=c,
            alpha=0.8,
            label=f"lambda={r['lam']:g}" if r["seed"] == runs[0]["seed"] else None,
        )
    ax.set_xlabel("RL step")
    ax.set_ylabel("mean training reward (5-step mean)")
    ax.set_title("MGPO vs GRPO on the tiny task, one line per seed")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
