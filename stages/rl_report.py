"""The rl stage's section of the run report: per phase its reward curve with the held-out curve
and the MGPO weight (PNG), and what the phase learned from (``phase_health`` in stages/rl.py)."""

from __future__ import annotations

import json
from pathlib import Path

from ssp.config.recipe import Recipe
from ssp.core.manifest import Manifest
from ssp.stages.shared import heldout_pass_table

HELDOUT_TITLE = "RL gain: before vs after MGPO"


def results(recipe: Recipe, manifest: Manifest) -> list[str]:
    """The table `make demo` prints: held-out Pass@k before vs after RL."""
    table = heldout_pass_table(recipe, manifest, "rl", HELDOUT_TITLE)
    return [table] if table else []


def report(recipe: Recipe, manifest: Manifest) -> list[str]:
    rl = manifest.stage("rl")
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
            *rl_health(phase),
        ]
    table = heldout_pass_table(recipe, manifest, "rl", HELDOUT_TITLE)
    if table:
        parts += [table, ""]
    return parts


def rl_health(phase: dict) -> list[str]:
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
