"""Does a student learn more from diversity-selected teacher solutions? (issue 15, experiment 6)

    python benchmarks/teacher_students.py --seeds 0,1,2 [--arms maxmin,random,one]
        [--recipe recipes/tiny_teacher.yaml] [--prefix tt] [--dry-run] [key=value ...]

Runs ``recipes/tiny_teacher.yaml`` (``make demo`` first: its spectrum model is the teacher) once per
arm and seed with ``ssp run``, each in its own run folder ``runs/<prefix>-<arm>-s<seed>``:

- ``maxmin``: up to 3 correct solutions per problem, the 3 that differ most (the recipe);
- ``random``: up to 3 correct solutions drawn at random from the same samples;
- ``one``: one correct solution drawn at random, trained for proportionally more epochs so that it
  sees as many SFT examples as ``maxmin`` (the same budget; its tokens trained are reported).

A seed changes the splits (``data.seed``), so the problems, the teacher's samples, the student's
initialisation (the tiny model is built with ``data.seed``) and its data order (``sft.seed``,
``rl.seed``). Within a seed the arms share the splits and the teacher's samples (the recipe's
``samples_dir``: sampled once). Every arm runs the whole chain (sft, probe, merge, rl, eval); a
run that is complete is not re-run (``ssp run`` resumes), so the script can be interrupted.

Trailing ``key=value`` overrides apply to every arm (docs/experiments.md, experiment 6, ran with
``sft.num_train_epochs=4 stages=[data,sft,probe,merge,eval] eval.models=[sft,spectrum]`` to fit 9
runs in an hour on 2 cores). Prints one table per measure: mean over seeds +- standard error over seeds, and the paired
difference to ``maxmin`` (per seed, then mean +- SE). Writes ``runs/<prefix>-students.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARMS = {
    "maxmin": [],
    "random": ["data.teacher.selection=random"],
    "one": ["data.teacher.selection=random", "data.teacher.solutions_per_problem=1"],
}


def _run(recipe: Path, name: str, overrides: list[str], dry: bool) -> float:
    cmd = [str(Path(sys.executable).parent / "ssp"), "run", str(recipe), f"run_name={name}", *overrides]
    print("+", " ".join(cmd), flush=True)
    if dry:
        return 0.0
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    return time.perf_counter() - t


def _examples(run: Path) -> int:
    """SFT examples (problem, solution pairs) of a built corpus, counted from its file."""
    with open(run / "data" / "sft.jsonl") as f:
        return sum(len(json.loads(line)["solutions"]) for line in f)


def _measures(run: Path) -> dict[str, float]:
    res = json.loads((run / "eval" / "results.json").read_text())["results"]
    probe = json.loads((run / "probe" / "probe_table.json").read_text())
    card = json.loads((run / "data" / "data_card.json").read_text())
    last = sorted(probe["table"], key=lambda c: int(c.rsplit("-", 1)[-1]))[-1]
    logs = json.loads((run / "sft" / "log_history.json").read_text())
    tokens = max((e.get("num_tokens", 0) for e in logs), default=0)
    out = {
        "sft_examples": _examples(run),
        "sft_tokens_trained": tokens,
        "probe_last_pass@1": probe["table"][last]["all"]["pass@1"],
        "probe_last_pass@8": probe["table"][last]["all"]["pass@8"],
        "kept_divergence": card["teacher"]["divergence"]["kept_mean"],  # None: one solution, no pairs
    }
    for model in ("sft", "spectrum", "signal"):
        if model not in res:
            continue
        r = res[model]["tiny_heldout"]
        out[f"{model}_pass@1"] = r["pass@1"]
        out[f"{model}_pass@8"] = r["pass@8"]
    return out


def _mean_se(xs: list[float | None]) -> str:
    if any(x is None for x in xs):
        return "-"
    if len(xs) < 2:
        return f"{xs[0]:.4g}" if xs else "-"
    return f"{statistics.mean(xs):.4g} +- {statistics.stdev(xs) / len(xs) ** 0.5:.2g}"


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--arms", default="maxmin,random,one")
    ap.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "tiny_teacher.yaml")
    ap.add_argument("--prefix", default="tt")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--report-only", action="store_true", help="read the finished runs, run nothing")
    ap.add_argument("overrides", nargs="*", help="key=value for every arm")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from ssp.config.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = args.arms.split(",")
    unknown = sorted(set(arms) - set(ARMS))
    if unknown or "maxmin" not in arms:
        raise SystemExit(f"--arms: needs maxmin (the reference arm) and only {sorted(ARMS)}; got {arms}")
    arms = ["maxmin"] + [a for a in arms if a != "maxmin"]  # maxmin first: 'one' reads its budget

    runs: dict[str, dict[int, Path]] = {a: {} for a in arms}
    seconds: dict[str, dict[int, float]] = {a: {} for a in arms}
    for seed in seeds:
        common = [
            *args.overrides,
            f"data.seed={recipe.data.seed + seed}",
            f"data.teacher.seed={seed}",
            f"data.rl_pass_rate.seed={seed}",
            f"sft.seed={recipe.sft.seed + seed}",
            f"rl.seed={recipe.rl.seed + seed}",
        ]
        for arm in arms:
            name = f"{args.prefix}-{arm}-s{seed}"
            extra = list(ARMS[arm])
            runs[arm][seed] = Path(recipe.output_root) / name
            if args.report_only:
                continue
            if arm == "one" and not args.dry_run:  # the same SFT examples as maxmin: more epochs
                ref = _examples(Path(recipe.output_root) / f"{args.prefix}-maxmin-s{seed}")
                # build the one-solution corpus first (data stage only) to count its examples
                _run(args.recipe, name, [*common, *extra, "stages=[data]"], False)
                own = _examples(Path(recipe.output_root) / name)
                extra.append(f"sft.num_train_epochs={recipe.sft.num_train_epochs * ref / own:.4f}")
            seconds[arm][seed] = _run(args.recipe, name, [*common, *extra], args.dry_run)
    if args.dry_run:
        return

    table = {a: {s: _measures(p) for s, p in runs[a].items()} for a in arms}
    keys = list(next(iter(table["maxmin"].values())))
    print(f"\nmean over seeds {seeds} +- SE over seeds; diff = arm - maxmin, paired by seed\n")
    print("| measure | " + " | ".join(arms) + " | " + " | ".join(f"{a} - maxmin" for a in arms[1:]) + " |")
    print("|---" * (1 + 2 * len(arms) - 1) + "|")
    for k in keys:
        cells = [_mean_se([table[a][s][k] for s in seeds]) for a in arms]
        diffs = [_mean_se([_diff(table[a][s][k], table["maxmin"][s][k]) for s in seeds]) for a in arms[1:]]
        print(f"| {k} | " + " | ".join(cells + diffs) + " |")
    wall = {a: round(sum(seconds[a].values()), 1) for a in arms}
    print(f"\nwall seconds per arm (all seeds, this invocation; 0 = already complete): {wall}")
    out = Path(recipe.output_root) / f"{args.prefix}-students.json"
    out.write_text(json.dumps({"seeds": seeds, "table": table, "seconds": seconds}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
