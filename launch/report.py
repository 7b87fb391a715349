"""``runs/<name>/report.md``: what each completed stage produced, and what it cost.

Sections appear for the stages that have completed: the stage table, the cost table beside the
reference run's, the data card, the SFT loss curve (PNG) with the greedy held-out check, the
probe heatmap, the fusion weights, the RL curves and the eval table and chart per model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ssp.config.recipe import Recipe
from ssp.core.manifest import Manifest
from ssp.core.tables import markdown_table


def heldout_pass_table(recipe: Recipe, manifest: Manifest, stage: str = "merge") -> str | None:
    """Markdown table of held-out Pass@1 / Pass@k recorded by ``stage``: the merged model vs the
    last SFT checkpoint (merge), or before vs after RL (rl)."""
    entry = manifest.stage(stage)
    if not entry or entry.get("status") != "completed" or "heldout" not in entry["metrics"]:
        return None
    heldout = entry["metrics"]["heldout"]
    keys = list(next(iter(heldout.values()))["pass"]["all"])
    domains = [d for d in next(iter(heldout.values()))["pass"] if d != "all"]
    out = [
        {
            "merge": "Expert fusion: the spectrum model vs the last SFT checkpoint",
            "rl": "RL gain: before vs after MGPO",
        }[stage],
        "",
        f"Held-out sampling ({recipe.probe.n_samples} samples per problem, temperature "
        f"{recipe.probe.temperature}): all domains, then {keys[-1]} per domain",
        "",
        markdown_table(
            ["model", *keys, *(f"{d} {keys[-1]}" for d in domains)],
            (
                [
                    name,
                    *(f"{r['pass']['all'][k]:.3f}" for k in keys),
                    *(f"{r['pass'][d][keys[-1]]:.3f}" for d in domains),
                ]
                for name, r in heldout.items()
            ),
        ),
    ]
    return "\n".join(out)


def results_table(recipe: Recipe) -> str:
    """The tables `make demo` prints: SFT's greedy check, any held-out comparison of merge and rl,
    the eval table per model, and the cost table."""
    manifest = Manifest(recipe.run_dir)
    tables = [_greedy_table(manifest)]
    for stage in ("merge", "rl"):
        heldout = heldout_pass_table(recipe, manifest, stage)
        if heldout:
            tables.append(heldout)
    if manifest.completed("eval"):
        tables.append(Path(manifest.outputs("eval").markdown).read_text().rstrip())
    tables.append(cost_table(manifest))
    return "\n\n".join(tables)


def cost_table(manifest: Manifest) -> str:
    """Per-stage cost (completed and failed attempts alike), the total, and the reference run."""
    from ssp.core.cost import REFERENCE, totals, unit_label

    rows = [(n, e) for n, e in manifest.data["stages"].items() if e.get("cost")]
    cells = [
        [
            name,
            f"shared from {e['shared_from']}" if e.get("shared_from") else e["status"],
            f"{e['cost']['count']} x {e['cost']['hardware']}",
            f"{e['cost']['seconds'] / 3600:.4f}",
            f"{e['cost']['hours']:.4f}",
            unit_label(e["cost"]["unit"]),
            f"{e['cost']['usd']:.4f}",
        ]
        for name, e in rows
    ]
    total = totals([e["cost"] for _, e in rows])
    hours = "; ".join(f"{v:.4f} {unit_label(k)}" for k, v in total.items() if k != "usd")
    cells.append(["**this run**", "", "", "", hours, "", f"**{total['usd']:.4f}**"])
    cells.append(
        [
            f"{REFERENCE['name']}: SFT + RL",
            "",
            REFERENCE["gpu"],
            "",
            f"{REFERENCE['gpu_hours']:,.0f}",
            "GPU-hours",
            f"{REFERENCE['usd']:,.0f}",
        ]
    )
    header = ["stage", "status", "hardware", "wall (h)", "hours", "unit", "USD"]
    return "Cost (wall time x GPUs, or x CPU cores on a CPU run)\n\n" + markdown_table(header, cells)


def _greedy_table(manifest: Manifest) -> str:
    """Markdown table: held-out greedy accuracy per domain, starting model vs SFT final checkpoint."""
    entry = manifest.stage("sft")
    if not entry or entry.get("status") != "completed":
        return "(no completed sft stage yet)"
    acc = entry["metrics"].get("heldout_greedy_accuracy", {})
    if isinstance(acc, str):  # "skipped: no held-out split"
        return f"Held-out greedy accuracy: {acc}"
    rows = [
        ("starting model", acc.get("start"), acc.get("start_per_domain", {})),
        (
            f"SFT final ({Path(manifest.outputs('sft').model).name})",
            acc.get("final"),
            acc.get("final_per_domain", {}),
        ),
    ]
    domains = sorted(acc.get("final_per_domain", {}))
    table = markdown_table(
        ["model", "all", *domains],
        (
            [name, f"{total:.3f}", *(f"{per.get(d, 0):.3f}" for d in domains)]
            for name, total, per in rows
            if total is not None
        ),
    )
    return f"Held-out greedy accuracy (one greedy completion per problem)\n\n{table}"


def _loss_plot(history_file: Path, out_png: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = json.loads(history_file.read_text())
    points = [(h["step"], h["loss"]) for h in history if "loss" in h]
    if not points:
        return False
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(*zip(*points, strict=True), marker=".")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("train loss (assistant tokens)")
    ax.set_title("SFT loss")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return True


def _table_and_chart(
    title: str, markdown: str, chart: tuple[str, str], note: str, run_dir: Path
) -> list[str]:
    """A report section made of a stage's Markdown table, its PNG (alt text, path) and a line."""
    alt, png = chart
    return [
        f"## {title}",
        "",
        Path(markdown).read_text(),
        f"![{alt}]({os.path.relpath(png, run_dir)})",  # a stage shared from another run lives there
        "",
        note,
        "",
    ]


def _probe_and_merge_sections(recipe: Recipe, manifest: Manifest) -> list[str]:
    parts: list[str] = []
    probe = manifest.stage("probe")
    if manifest.completed("probe") and (out := manifest.outputs("probe")).enabled:
        parts += _table_and_chart(
            "Diversity probing",
            out.markdown,
            ("probe heatmap", out.heatmap),
            f"Mean sampling throughput: {probe['metrics']['tokens_per_second_mean']:.0f} tokens/s.",
            recipe.run_dir,
        )
    merge = manifest.stage("merge")
    if merge and merge["status"] == "completed":
        parts += ["## Expert fusion", ""]
        spectrum = manifest.outputs("merge")
        if spectrum.merged:
            weights = ", ".join(f"{c} x {w:.3f}" for c, w in merge["metrics"]["weights"].items())
            parts += [f"Spectrum model `{spectrum.model}` = {weights}.", ""]
        else:
            parts += [
                f"Probing disabled: the spectrum model is the last SFT checkpoint `{spectrum.model}`.",
                "",
            ]
        table = heldout_pass_table(recipe, manifest, "merge")
        if table:
            parts += [table, ""]
    return parts


def _rl_section(recipe: Recipe, manifest: Manifest) -> list[str]:
    rl = manifest.stage("rl")
    if not rl or rl["status"] != "completed":
        return []
    parts = [
        "## MGPO (RL)",
        "",
        f"lambda = {rl['metrics']['lam']} ({'plain GRPO' if rl['metrics']['lam'] == 0 else 'MGPO'}).",
        "",
    ]
    for phase in rl["metrics"]["phases"]:
        history = json.loads((Path(phase["final"]).parent / "log_history.json").read_text())
        png = recipe.run_dir / f"rl_{Path(phase['final']).parent.name}.png"
        if _rl_plot(history, png, phase["phase"], phase.get("heldout_curve")):
            parts += [f"![RL {phase['phase']}]({png.name})", ""]
        parts += [
            f"Phase `{phase['phase']}`: {phase['steps']} steps on {phase['prompts']} prompts"
            + (f", filter {phase['filter']}" if phase.get("filter") else "")
            + ".",
            "",
            *_rl_health(phase),
        ]
    table = heldout_pass_table(recipe, manifest, "rl")
    if table:
        parts += [table, ""]
    return parts


def _rl_health(phase: dict) -> list[str]:
    """Lines on what a phase learned from: steps without signal, dynamic sampling, the step-time
    split, rollouts against the trainer, the held-out curve, rewards that failed."""
    lines = []
    if phase.get("logged_steps"):
        silent, n = phase["steps_without_signal"], phase["logged_steps"]
        flag = " **No learning signal in most steps.**" if silent > n / 2 else ""
        lines.append(
            f"Steps without learning signal (no group with differing rewards trained on): {silent} of {n}.{flag}"
        )
    dyn = phase.get("dynamic_sampling")
    if dyn:
        lines.append(
            f"Dynamic sampling: {dyn['groups_kept']} of {dyn['groups_drawn']} groups drawn were kept "
            f"({dyn['rounds_mean']:.2f} rounds per step); groups with mixed correctness: "
            f"{100 * dyn['frac_mixed_first_round']:.1f}% of each step's first batch, "
            f"{100 * dyn['frac_mixed_drawn']:.1f}% of all drawn; the refill bound was hit in "
            f"{dyn['steps_refill_bound_hit']} steps."
        )
    answers = phase.get("answers") or {}
    shares = [
        f"{name}: {100 * v['no_answer_rate']:.1f}% held no final answer"
        + (f", {100 * v['truncated_zeroed']:.1f}% scored 0 for truncation" if "truncated_zeroed" in v else "")
        for name, v in answers.items()
        if isinstance(v, dict) and "no_answer_rate" in v
    ]
    if shares or answers.get("clipped_ratio") is not None:
        clipped = answers.get("clipped_ratio")
        lines.append(
            "Rollout answers (mean per step): "
            + "; ".join(shares + ([f"{100 * clipped:.1f}% truncated"] if clipped is not None else []))
            + "."
        )
    split = phase.get("step_seconds")
    if split:
        lines.append("Mean seconds per step: " + ", ".join(f"{k} {v:.2f}" for k, v in split.items()) + ".")
    rollouts = phase.get("rollouts")
    if rollouts and rollouts.get("engine", "trainer") != "trainer":
        bounds = (
            f" [{rollouts.get('clip_min')}, {rollouts.get('clip_max')}]"
            if rollouts["correction"] != "off"
            else ""
        )
        line = f"Rollouts from {rollouts['engine']}; importance-sampling correction: {rollouts['correction']}{bounds}."
        mm = phase.get("mismatch")
        if mm:
            line += (
                f" Trainer/engine token ratio: mean {mm['ratio_mean']:.4f}, min {mm['ratio_min']:.4f}, "
                f"max {mm['ratio_max']:.4f}; mean |delta log p| {mm['logp_abs_diff_mean']:.4f}; "
                f"{100 * mm['frac_outside_bounds']:.2f}% outside the correction's bounds."
            )
        checks = phase.get("sync_checks") or []
        if checks:
            worst = max(c["logp_abs_diff_mean"] for c in checks)
            line += (
                f" Weight-sync checks: {len(checks)} passed (steps {[c['step'] for c in checks]}), "
                f"largest mean |delta log p| {worst:.4f} (tolerance {checks[0]['tolerance']})."
            )
        lines.append(line)
    curve = phase.get("heldout_curve")
    if curve:
        lines.append(
            f"Held-out pass@1 during the phase ({curve[0]['samples']} samples per point): "
            + ", ".join(f"step {p['step']} {100 * p['pass@1']:.1f}%" for p in curve)
            + "."
        )
    for name, rates in (phase.get("reward_failure_rates") or {}).items():
        lines.append(
            f"Reward `{name}`, mean share of items per step: "
            + ", ".join(f"{k.removesuffix('_rate')} {100 * v:.2f}%" for k, v in rates.items())
            + "."
        )
    return [*(f"- {line}" for line in lines), ""] if lines else []


def _rl_plot(history: list[dict], out_png: Path, title: str, curve: list[dict] | None = None) -> bool:
    """Two panels: training reward with the held-out curve (accuracy, one axis), and the MGPO weight."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [h for h in history if "reward" in h and "step" in h]
    if not rows:
        return False
    weights = [h for h in rows if "mgpo/weight_mean" in h]
    fig, axes = plt.subplots(1, 2 if weights else 1, figsize=(9 if weights else 5, 3), squeeze=False)
    ax = axes[0][0]
    ax.plot(
        [h["step"] for h in rows], [h["reward"] for h in rows], marker=".", label="training reward (mean)"
    )
    if curve:
        ax.plot([p["step"] for p in curve], [p["pass@1"] for p in curve], marker="o", label="held-out pass@1")
    ax.set_xlabel("RL step")
    ax.set_ylabel("reward / accuracy")
    ax.set_ylim(bottom=0)
    ax.set_title(f"RL phase {title}")
    ax.legend(fontsize=8)
    if weights:
        ax = axes[0][1]
        ax.plot([h["step"] for h in weights], [h["mgpo/weight_mean"] for h in weights], marker=".")
        ax.set_xlabel("RL step")
        ax.set_ylabel("MGPO weight, mean over trained groups")
        ax.set_ylim(0, 1.05)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return True


def write_report(recipe: Recipe) -> Path:
    run_dir = recipe.run_dir
    manifest = Manifest(run_dir)
    parts = [f"# Run `{recipe.run_name}`", ""]
    parts += [
        markdown_table(
            ["stage", "status", "wall time (s)", "config hash"],
            (
                [n, e["status"], e.get("wall_seconds"), e.get("config_hash")]
                for n, e in manifest.data["stages"].items()
            ),
        ),
        "",
    ]
    data = manifest.stage("data")
    if data and data["status"] == "completed":
        parts += [
            Path(manifest.outputs("data").data_card).read_text().replace("# Data card", "## Data card"),
            "",
        ]
    sft = manifest.stage("sft")
    if sft and sft["status"] == "completed":
        parts += ["## SFT", ""]
        if _loss_plot(Path(manifest.outputs("sft").log_history), run_dir / "sft_loss.png"):
            parts += ["![SFT loss](sft_loss.png)", ""]
        m = sft["metrics"]
        parts += [
            f"{m['examples']} examples ({m['dropped_too_long']} dropped as too long), {m['steps']} steps, "
            f"loss {m['loss_first']:.3f} -> {m['loss_last']:.3f}.",
            "",
            _greedy_table(manifest),
            "",
        ]
    parts += _probe_and_merge_sections(recipe, manifest)
    parts += _rl_section(recipe, manifest)
    if manifest.completed("eval"):
        out = manifest.outputs("eval")
        parts += _table_and_chart(
            "Evaluation",
            out.markdown,
            ("Pass@1 by model", out.chart),
            f"Every sampled completion with its score: `{out.completions}/` (Parquet).",
            run_dir,
        )
    parts += ["## Cost", "", cost_table(manifest), ""]
    path = run_dir / "report.md"
    path.write_text("\n".join(parts))
    return path
