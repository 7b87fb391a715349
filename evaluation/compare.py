"""Compare runs: the arms of an ablation, each over seeds, one table per benchmark.

    ssp compare runs/tt-maxmin-s0 runs/tt-maxmin-s1 runs/tt-random-s0 runs/tt-random-s1
    ssp compare runs/sweep/ --baseline data.teacher.selection=maxmin --out runs/sweep/compare
    ssp compare runs/tt-* --by data.teacher.selection,data.teacher.solutions_per_problem

**Arms and seeds.** Each run folder holds the recipe it ran (``recipe.yaml``). Runs whose recipes
differ only in seed keys (any key named ``seed``) and in ``run_name``/``output_root`` are one arm,
the seeds of each other. An arm is named by the keys in which arms differ
(``data.teacher.selection=random``), or by the values of the ``--by`` keys, which then alone
decide the arms (use it when a key varies per seed, such as epochs scaled to a budget). A run's
seed is the set of its seed keys' values: arms are paired seed by seed where they share them.

**Measures**, per arm, benchmark, model (base, sft, spectrum, signal, ...) and metric of the eval
stage (pass@1, pass@k, cons@k): the mean over seeds and a 95% t-interval over seeds (n >= 2; with
one seed, no interval: the table says n = 1). Pass@1 also gets its standard error over problems
(problems as the unit: the spread of per-problem accuracy / sqrt(problems), read from the saved
completions, averaged over seeds): the noise one evaluation set of this size carries, against which
a difference between arms should be read.

**Deltas** against ``--baseline`` (an arm name; default the first arm): paired by seed when the two
arms ran the same seeds (mean and 95% t-interval of the per-seed differences), else the difference
of means with the intervals' half-widths combined in quadrature, marked "unpaired".

**Cost**: every stage's recorded cost (``manifest.json``), summed per arm: hours in their unit
(GPU-hours, or CPU-core-hours on a CPU run) and dollars, and the wall time; a shared stage costs
its run nothing. Beside it, the wall time each run would have taken alone (a shared stage counted
at the time its donor took): the difference is what sharing stages saved.

**Training curves** (``evaluation/curves.py``): SFT loss, RL reward and MGPO weight statistics per
step, averaged over each arm's seeds, and each curve's mean over steps with its interval.

Writes ``compare.md``, ``compare.json``, ``compare_<benchmark>.png`` (each metric per arm and
model, with its interval), ``compare_<benchmark>_vs_<key>.png`` when the arms differ in one
numeric key (pass@1 against the swept value: a lambda sweep's dose-response) and
``compare_curves.png``. A run folder without a completed eval stage is an error naming it.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssp.core.errors import SSPError
from ssp.core.tables import markdown_table
from ssp.evaluation.curves import arm_curves, label, plot_curves, stage_folder
from ssp.evaluation.intervals import interval

IGNORED = ("run_name", "output_root")


class CompareError(SSPError):
    """Runs that cannot be compared, named."""


@dataclass
class Run:
    path: Path
    recipe: dict[str, Any]  # flattened: {"data.teacher.selection": "maxmin", ...}
    results: dict[str, dict[str, dict[str, Any]]]  # model -> benchmark -> metrics
    cost: dict[str, float]
    eval_dir: Path
    shared: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage -> {donor, cost}
    arm: str = ""
    seed: tuple = ()
    values: dict[str, Any] = field(default_factory=dict)  # the arm's keys and values


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Recipe keys as the command line writes them: ``rl.lam``, ``rl.phases[0].learning_rate`` (a list
    of mappings is indexed, as overrides and ``--grid`` index it); a list of values is one key."""
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(d, list) and d and all(isinstance(v, dict) for v in d):
        out = {}
        for i, v in enumerate(d):
            out.update(_flatten(v, f"{prefix[:-1]}[{i}]."))
        return out
    return {prefix[:-1]: json.dumps(d) if isinstance(d, list) else d}


def _is_seed(key: str) -> bool:
    return key.rsplit(".", 1)[-1] == "seed" or key in IGNORED


def run_folders(paths: list[Path]) -> list[Path]:
    """The run folders named, a folder of runs expanded to the runs under it (sorted)."""
    out: list[Path] = []
    for p in paths:
        if (p / "manifest.json").is_file():
            out.append(p)
        elif p.is_dir() and (runs := sorted(q.parent for q in p.glob("*/manifest.json"))):
            out += runs
        else:
            raise CompareError(f"{p}: not a run folder (no manifest.json) nor a folder of runs")
    if len(set(out)) != len(out):
        raise CompareError(f"a run is named twice: {sorted(map(str, out))}")
    return out


def load_run(path: Path) -> Run:
    from omegaconf import OmegaConf

    manifest = json.loads((path / "manifest.json").read_text())["stages"]
    entry = manifest.get("eval") or {}
    if entry.get("status") != "completed":
        raise CompareError(f"{path}: the eval stage is {entry.get('status', 'not run')}, nothing to compare")
    if not (path / "recipe.yaml").is_file():
        raise CompareError(f"{path}: no recipe.yaml (the recipe the run ran)")
    recipe = _flatten(OmegaConf.to_container(OmegaConf.load(path / "recipe.yaml")))
    eval_dir = stage_folder(path, entry, "eval")  # a shared eval lives in its donor
    results = json.loads((eval_dir / "results.json").read_text())["results"]
    cost: dict[str, float] = defaultdict(float)
    shared: dict[str, dict[str, Any]] = {}
    for name, stage in manifest.items():
        c = stage.get("cost") or {}
        if c:
            cost[c["unit"]] += c["hours"]
            cost["usd"] += c["usd"]
            cost["wall_hours"] += c["seconds"] / 3600
        if stage.get("status") == "completed":  # a shared stage keeps the wall time its donor spent
            cost["unshared_wall_hours"] += (stage.get("wall_seconds") or 0) / 3600
        if stage.get("shared_from"):
            shared[name] = {
                "donor": str(Path(stage["shared_from"]).parent),  # as recorded
                "donor_path": str(stage_folder(path, stage, name).parent.resolve()),  # found from here
                "wall_hours": (stage.get("wall_seconds") or 0) / 3600,
                "cost": stage.get("shared_cost"),
            }
    return Run(path, recipe, results, dict(cost), eval_dir, shared)


def _problem_se(eval_dir: Path, model: str, bench: str) -> float | None:
    """Standard error of pass@1 with problems as the unit, from the eval's saved completions."""
    from ssp.evaluation.evaluate import unit_name

    f = eval_dir / "completions" / f"{unit_name(model, bench)}.parquet"
    if not f.is_file():
        return None
    import pyarrow.parquet as pq

    t = pq.read_table(f, columns=["problem_id", "score"]).to_pydict()
    per: dict[str, list[float]] = defaultdict(list)
    for pid, s in zip(t["problem_id"], t["score"], strict=True):
        per[pid].append(s or 0.0)  # unscored = not correct, as in the eval's own pass@1
    acc = [sum(v) / len(v) for v in per.values()]
    return statistics.stdev(acc) / math.sqrt(len(acc)) if len(acc) > 1 else None


def assign_arms(runs: list[Run], by: list[str] | None = None) -> None:
    """Set each run's arm name and seed (see the module docstring)."""
    keys = sorted(set().union(*(r.recipe for r in runs)))
    if by:
        unknown = [k for k in by if k not in keys]
        if unknown:
            raise CompareError(f"--by: no run's recipe has the keys {unknown}")
        arm_keys = by
    else:
        arm_keys = [
            k for k in keys if not _is_seed(k) and len({json.dumps(r.recipe.get(k)) for r in runs}) > 1
        ]
    seed_keys = [k for k in keys if _is_seed(k) and k not in IGNORED]
    for r in runs:
        r.arm = ", ".join(f"{k}={r.recipe.get(k)}" for k in arm_keys) or "all runs"
        r.values = {k: r.recipe.get(k) for k in arm_keys}
        r.seed = tuple(r.recipe.get(k) for k in seed_keys)
    seen: dict[tuple, Path] = {}
    for r in runs:
        if (r.arm, r.seed) in seen:
            raise CompareError(
                f"{seen[(r.arm, r.seed)]} and {r.path} are the same arm ({r.arm}) with the same seeds: "
                "name the keys that tell them apart with --by"
            )
        seen[(r.arm, r.seed)] = r.path


def _delta(values: dict, ref: dict) -> dict[str, Any]:
    """arm - baseline for one metric, from {seed: value} of each (see the module docstring)."""
    if set(values) == set(ref):
        return {**interval([values[s] - ref[s] for s in values]), "paired": True}
    a, b = interval(list(values.values())), interval(list(ref.values()))
    both = a["ci95"] is not None and b["ci95"] is not None
    return {
        "mean": a["mean"] - b["mean"],
        "ci95": math.hypot(a["ci95"], b["ci95"]) if both else None,
        "n": a["n"],
        "paired": False,
    }


def compare(runs: list[Run], baseline: str | None = None) -> dict[str, Any]:
    """Every arm's measures and deltas per benchmark and model, and its cost (module docstring)."""
    arms: dict[str, list[Run]] = defaultdict(list)
    for r in runs:
        arms[r.arm].append(r)
    base = baseline or next(iter(arms))
    if base not in arms:
        raise CompareError(f"--baseline {base!r} is not an arm; arms: {list(arms)}")
    out: dict[str, Any] = {"baseline": base, "arms": {}, "benchmarks": {}}
    inside = {str(r.path.resolve()) for r in runs}
    for name, rs in arms.items():
        cost: dict[str, float] = defaultdict(float)
        shared = []
        for r in rs:
            for k, v in r.cost.items():
                cost[k] += v
            for stage, s in sorted(r.shared.items()):
                outside = s["donor_path"] not in inside
                if outside:  # paid by a run outside this comparison: this arm inherited it
                    cost["inherited_wall_hours"] += s["wall_hours"]
                    for k, v in (s["cost"] or {}).items():
                        if k in ("hours", "usd"):
                            cost[f"inherited_{k}"] += v
                shared.append({"run": str(r.path), "stage": stage, "donor": s["donor"], "outside": outside})
        out["arms"][name] = {
            "runs": [str(r.path) for r in rs],
            "values": rs[0].values,
            "cost": dict(cost),
            "shared": shared,
        }

    # (benchmark, arm, model) -> metric -> {seed: value}
    values: dict[tuple, dict[str, dict]] = {}
    for name, rs in arms.items():
        for r in rs:
            for model, by_bench in r.results.items():
                for bench, m in by_bench.items():
                    cell = values.setdefault((bench, name, model), {})
                    for k, v in m.items():
                        if k.startswith(("pass@", "cons@")) and "_" not in k:
                            cell.setdefault(k, {})[r.seed] = v
    for (bench, name, model), cell in values.items():
        short = [str(r.path) for r in arms[name] if r.seed not in next(iter(cell.values()))]
        if short:
            raise CompareError(f"{bench}, model {model}: no result in {short} (arm {name})")
        for k, by_seed in list(cell.items()):  # None: undefined for the benchmark (cons@k of code)
            undefined = [seed for seed, v in by_seed.items() if v is None]
            if len(undefined) == len(by_seed):
                del cell[k]
            elif undefined:
                where = [str(r.path) for r in arms[name] if r.seed in undefined]
                raise CompareError(
                    f"{bench}, model {model}, arm {name}: {k} is undefined in {where} and a number "
                    "in the arm's other runs"
                )
    for (bench, name, model), cell in values.items():
        row: dict[str, Any] = {k: interval(list(v.values())) for k, v in sorted(cell.items())}
        ses = [_problem_se(r.eval_dir, model, bench) for r in arms[name]]
        if all(se is not None for se in ses):
            row["pass@1_problem_se"] = statistics.mean(ses)
        ref = values.get((bench, base, model))
        if name != base and ref:
            row["delta"] = {k: _delta(v, ref[k]) for k, v in sorted(cell.items()) if k in ref}
        out["benchmarks"].setdefault(bench, {}).setdefault(name, {})[model] = row
    out["curves"], out["curves_unreadable"] = arm_curves({n: [r.path for r in rs] for n, rs in arms.items()})
    return out


def _cell(m: dict[str, Any], pct: bool = True) -> str:
    if not pct:  # a raw value (a loss, a weight): 4 significant digits
        ci = "" if m["ci95"] is None else f" ± {m['ci95']:.2g}"
        return f"{m['mean']:.4g}{ci} (n={m['n']})"
    if m["ci95"] is None:
        return f"{100 * m['mean']:.1f} (n={m['n']})"
    return f"{100 * m['mean']:.1f} ± {100 * m['ci95']:.1f} (n={m['n']})"


def markdown(result: dict[str, Any]) -> str:
    """One table per benchmark (metrics in %, mean ± 95% interval over seeds), deltas, cost."""
    base = result["baseline"]
    parts = [
        "Mean over seeds ± 95% t-interval (%); Δ = arm - baseline "
        f"({base}), paired by seed unless marked; SE(problems): pass@1's standard error with problems "
        "as the unit, the noise of one evaluation set this size."
    ]
    for bench, by_arm in result["benchmarks"].items():
        metrics = sorted(
            {k for ms in by_arm.values() for row in ms.values() for k in row if "@" in k and "_" not in k}
        )
        rows = []
        for arm, models in by_arm.items():
            for model, row in models.items():
                se = row.get("pass@1_problem_se")
                cells = [arm, model, *(_cell(row[k]) if k in row else "" for k in metrics)]
                cells.append(f"{100 * se:.1f}" if se is not None else "")
                for k in metrics:
                    d = row.get("delta", {}).get(k)
                    cells.append("" if d is None else _cell(d) + ("" if d["paired"] else " unpaired"))
                rows.append(cells)
        header = ["arm", "model", *metrics, "SE(problems) pass@1", *(f"Δ {k}" for k in metrics)]
        parts.append(f"## {bench}\n\n" + markdown_table(header, rows))
    curve_rows = [
        [label(curve), arm, _cell(c["over_steps"], pct=False), f"{c['mean'][-1]:.4g}", len(c["step"])]
        for curve, by_arm in result.get("curves", {}).items()
        for arm, c in by_arm.items()
    ]
    unreadable = result.get("curves_unreadable", [])
    if curve_rows or unreadable:
        header = ["curve", "arm", "mean over steps ± 95% (n seeds)", "last step (mean)", "steps"]
        text = "## Training curves\n\n"
        if curve_rows:
            text += "![curves](compare_curves.png)\n\n" + markdown_table(header, curve_rows)
        if unreadable:
            text += "\n\n**Trainer logs not read** (their arms have no curves):\n\n"
            text += "\n".join(f"- {u}" for u in unreadable)
        parts.append(text)
    other = (
        "usd",
        "wall_hours",
        "unshared_wall_hours",
        "inherited_wall_hours",
        "inherited_hours",
        "inherited_usd",
    )
    units = sorted({u for a in result["arms"].values() for u in a["cost"] if u not in other})
    cost_rows = [
        [
            arm,
            len(a["runs"]),
            *(f"{a['cost'].get(u, 0):.4f}" for u in units),
            f"{a['cost'].get('wall_hours', 0):.3f}",
            f"{a['cost'].get('unshared_wall_hours', 0):.3f}",
            f"{a['cost'].get('usd', 0):.4f}",
            f"{a['cost'].get('inherited_wall_hours', 0):.3f}",
        ]
        for arm, a in result["arms"].items()
    ]
    header = [
        "arm",
        "runs",
        *units,
        "wall hours",
        "wall hours if run alone",
        "USD",
        "inherited wall hours (paid outside)",
    ]
    spent = sum(a["cost"].get("wall_hours", 0) for a in result["arms"].values())
    alone = sum(a["cost"].get("unshared_wall_hours", 0) for a in result["arms"].values())
    inherited = sum(a["cost"].get("inherited_wall_hours", 0) for a in result["arms"].values())
    saved = (
        f"\n\nStage wall time spent by these runs {spent:.3f} h; every run alone (each stage at the time "
        f"its own run, or the run it was shared from, took) {alone:.3f} h. Of the difference, "
        f"{alone - spent - inherited:.3f} h was shared among these runs (paid once, here) and "
        f"{inherited:.3f} h was inherited from runs outside this comparison (paid there, not here)."
        if alone
        else ""
    )
    shared_rows = [
        [arm, sh["run"], sh["stage"], sh["donor"], "outside" if sh["outside"] else "compared here"]
        for arm, a in result["arms"].items()
        for sh in a.get("shared", [])
    ]
    if shared_rows:
        saved += "\n\n### Shared stages\n\n" + markdown_table(
            ["arm", "run", "stage", "shared from", "donor"], shared_rows
        )
    parts.append("## Cost\n\n" + markdown_table(header, cost_rows) + saved)
    return "\n\n".join(parts) + "\n"


def bars_figure(bench: str, by_arm: dict[str, dict[str, dict[str, Any]]]):
    """One panel per metric: a bar per (arm, model), coloured by arm, each seed a dot.

    The 95% interval is drawn only where there is one (two seeds or more); with one seed the
    title says so instead of promising an interval that is not there.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [(arm, model) for arm, models in by_arm.items() for model in models]
    metrics = sorted(
        {k for ms in by_arm.values() for row in ms.values() for k in row if "@" in k and "_" not in k}
    )
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = {arm: palette[i % len(palette)] for i, arm in enumerate(by_arm)}
    seeds = max(
        (row[k]["n"] for ms in by_arm.values() for row in ms.values() for k in metrics if k in row), default=0
    )
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(4 * len(metrics), 0.5 * len(labels) + 1.8), squeeze=False
    )
    for ax, k in zip(axes[0], metrics, strict=True):
        for i, (arm, model) in enumerate(labels):
            r = by_arm[arm][model].get(k)
            if r is None:
                continue
            ci = r["ci95"]
            ax.barh(
                i,
                100 * r["mean"],
                xerr=None if ci is None else 100 * ci,
                capsize=3,
                color=colour[arm],
                label=arm if k == metrics[0] and model == next(iter(by_arm[arm])) else None,
            )
            if r["n"] > 1:
                ax.plot([100 * v for v in r["values"]], [i] * r["n"], "k.", ms=3)
        ax.set_yticks(range(len(labels)), [f"{a} | {m}" for a, m in labels] if ax is axes[0][0] else [])
        ax.set_xlabel(f"{k} (%)")
        ax.set_xlim(left=0)
        ax.invert_yaxis()
    if len(by_arm) > 1:
        fig.legend(title="arm", fontsize=8, loc="lower center", ncol=min(len(by_arm), 4), frameon=False)
    what = "mean over seeds, bars 95% interval, dots seeds" if seeds > 1 else "one seed each: no interval"
    fig.suptitle(f"{bench}: {what}", fontsize=10)
    fig.tight_layout(rect=(0, 0.08 if len(by_arm) > 1 else 0, 1, 1))
    return fig


def plot(result: dict[str, Any], out: Path) -> list[Path]:
    """compare_<benchmark>.png (bars_figure), the swept-value plot, and the curves."""
    import matplotlib.pyplot as plt

    from ssp.core.atomic import write_atomic

    paths = []
    for bench, by_arm in result["benchmarks"].items():
        fig = bars_figure(bench, by_arm)
        path = out / f"compare_{bench}.png"
        write_atomic(path, lambda tmp, fig=fig: fig.savefig(tmp, format="png", dpi=110))
        plt.close(fig)
        paths.append(path)
        if (swept := _swept_value(result)) is not None:
            paths.append(_plot_vs_value(bench, by_arm, result, swept, out))
    if (path := plot_curves(result.get("curves", {}), out / "compare_curves.png")) is not None:
        paths.append(path)
    return paths


def _swept_value(result: dict[str, Any]) -> str | None:
    """The one numeric key the arms differ in, if that is how they differ (else None)."""
    keys = {k for a in result["arms"].values() for k in a["values"]}
    if len(keys) != 1:
        return None
    key = keys.pop()
    ok = all(
        isinstance(a["values"].get(key), int | float) and not isinstance(a["values"].get(key), bool)
        for a in result["arms"].values()
    )
    return key if ok else None


def _plot_vs_value(bench: str, by_arm: dict, result: dict, key: str, out: Path) -> Path:
    """compare_<benchmark>_vs_<key>.png: pass@1 of each model against the swept value."""
    import matplotlib.pyplot as plt

    from ssp.core.atomic import write_atomic

    fig, ax = plt.subplots(figsize=(5, 3.5))
    models = list(dict.fromkeys(m for ms in by_arm.values() for m in ms))
    for model in models:
        pts = sorted(
            (result["arms"][arm]["values"][key], row[model]["pass@1"])
            for arm, row in by_arm.items()
            if model in row and "pass@1" in row[model]
        )
        intervals = all(m["ci95"] is not None for _, m in pts)
        ax.errorbar(
            [x for x, _ in pts],
            [100 * m["mean"] for _, m in pts],
            yerr=[100 * m["ci95"] for _, m in pts] if intervals else None,
            marker="o",
            capsize=3,
            label=model,
        )
    seeds = min(
        (row["pass@1"]["n"] for ms in by_arm.values() for row in ms.values() if "pass@1" in row),
        default=1,
    )
    ax.set_xlabel(key)
    ax.set_ylabel("pass@1 (%)")
    ax.set_ylim(bottom=0)
    what = "mean, 95% interval over seeds" if seeds > 1 else "one seed: no interval"
    ax.set_title(f"{bench}: pass@1 vs {key} ({what})", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / f"compare_{bench}_vs_{key}.png"
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return path


def compare_runs(
    paths: list[Path],
    out: Path,
    by: list[str] | None = None,
    baseline: str | None = None,
    check: Callable[[Path], list[str]] | None = None,
    allow_stale: bool = False,
) -> str:
    """``ssp compare``: load, group, measure, write compare.md/.json/.png under ``out``; the markdown.
    ``check``: what keeps a run folder's results from being its recipe's (``launch/run_state.py``);
    a run with any such problem is refused, named, before anything is written; with ``allow_stale``
    it is compared, and listed with its problems at the top of compare.md and in compare.json."""
    from ssp.core.atomic import write_atomic

    folders = run_folders(paths)
    stale = {str(p): problems for p in folders if (problems := check(p))} if check is not None else {}
    if stale and not allow_stale:
        raise CompareError(
            "runs whose results are not their recipe's (finish them with `ssp run <run>/recipe.yaml`, "
            "leave them out, or compare them anyway with --allow-stale): "
            + "; ".join(f"{p}: {', '.join(problems)}" for p, problems in stale.items())
        )
    runs = [load_run(p) for p in folders]
    assign_arms(runs, by)
    result = compare(runs, baseline)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(result)
    if stale:
        result["stale"] = stale
        text = (
            "**Runs whose results are not their recipe's** (compared with --allow-stale: their arm "
            "names come from their current recipe.yaml, their results may not):\n\n"
            + "\n".join(f"- {p}: {', '.join(problems)}" for p, problems in stale.items())
            + "\n\n"
            + text
        )
    write_atomic(out / "compare.md", text)
    write_atomic(out / "compare.json", json.dumps(result, indent=1))
    plot(result, out)
    return text
