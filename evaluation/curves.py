"""Training curves across the arms of an ablation: what the trainers logged, step by step.

``ssp compare`` reads every run's trainer logs (``log_history.json``: the SFT stage's, and each
RL phase's, phases laid end to end) and, per arm, averages each curve over the seeds at the
steps every seed logged. The curves (``CURVES``): SFT loss; RL reward, the MGPO problem weight's
mean and minimum, the share of groups with p_c in {0, 1} among those trained on (no signal), the
share of mixed groups in each step's first batch (before dynamic sampling), the held-out curve,
policy entropy. A stage
shared from another run (``shared_from`` in the manifest) is read from that run's folder.

The held-out curve is one curve per RL phase (``rl:heldout/pass@1:<phase folder>``): each phase
measures its own domains (the demo's math phase on math, its code phase on code), so one line
across phases would join unlike numbers, and a phase's first point (step 0, laid at the previous
phase's last step) used to overwrite that phase's last point.

Each curve is also summarised per seed as its mean over the logged steps, and those means get a
95% t-interval over seeds (``evaluation/compare.py: interval``): the mean reward across training
is the simplest figure on which a lambda ablation differs, read with its noise.

A run whose RL or SFT stage did not run has no such curve (the arm is left out of that plot).
A stage that ran but whose log is missing or unreadable is listed by file in the comparison
(``compare.md``, ``compare.json``: ``curves_unreadable``) and its arm gets no curves; the
benchmark tables do not depend on it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from ssp.core.errors import SSPError
from ssp.core.outputs import RLOutputs
from ssp.evaluation.intervals import interval

# stage -> (logged key, label); PER_PHASE keys are one curve per RL phase
PER_PHASE = ("heldout/pass@1",)
CURVES: dict[str, list[tuple[str, str]]] = {
    "sft": [("loss", "SFT loss")],
    "rl": [
        ("reward", "RL reward"),
        ("mgpo/weight_mean", "MGPO weight, mean"),
        ("mgpo/weight_min", "MGPO weight, min"),
        ("mgpo/frac_pc_0_or_1", "groups with p_c in {0,1}"),
        ("dynamic_sampling/frac_mixed_first_round", "mixed groups before dynamic sampling"),
        ("heldout/pass@1", "held-out pass@1 during RL"),
        ("entropy", "RL policy entropy"),
    ],
}


class CurveError(SSPError):
    """A trainer log that should be there and is not readable, named."""


def _read(path: Path) -> list[dict[str, Any]]:
    try:
        history = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CurveError(f"{path}: the trainer log cannot be read ({err})") from None
    if not isinstance(history, list):
        raise CurveError(f"{path}: expected a list of logged steps, got {type(history).__name__}")
    return history


def stage_folder(run: Path, entry: dict[str, Any], stage: str) -> Path:
    """Where a completed stage's outputs are: ``run/<stage>``, or for a shared stage its donor's
    folder. ``shared_from`` is recorded as the sweep named it (relative to where the sweep ran):
    compared from elsewhere, it is found under the first ancestor of ``run`` that holds it."""
    shared = entry.get("shared_from")
    if not shared:
        return run / stage
    path = Path(shared)
    if path.is_absolute() or path.exists():
        return path
    return next((a / path for a in run.resolve().parents if (a / path).exists()), path)


def stage_logs(run: Path, entry: dict[str, Any], stage: str) -> list[dict[str, Any]]:
    """The logged steps of a completed ``sft`` or ``rl`` stage of ``run`` (its manifest ``entry``;
    RL phases end to end, steps renumbered); [] when the stage did not complete in this run."""
    if entry.get("status") != "completed":
        return []
    folder = stage_folder(run, entry, stage)
    if stage == "sft":
        return _read(folder / "log_history.json")
    steps: list[dict[str, Any]] = []
    for final in RLOutputs.from_record(entry["outputs"]).phases:
        offset = steps[-1]["step"] if steps else 0
        phase = Path(final).parent.name
        for row in _read(folder / phase / "log_history.json"):
            if "step" in row:
                steps.append({**row, "step": row["step"] + offset, "phase": phase})
    return steps


def run_curves(run: Path) -> dict[str, dict[int, float]]:
    """key -> {step: value} of every curve this run logged."""
    out: dict[str, dict[int, float]] = {}
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    for stage, keys in CURVES.items():
        logs = stage_logs(run, stages.get(stage) or {}, stage)
        for key, _ in keys:
            for phase in sorted({r.get("phase") for r in logs}, key=str) if key in PER_PHASE else [None]:
                points = {
                    int(r["step"]): float(r[key])
                    for r in logs
                    if key in r and (phase is None or r["phase"] == phase)
                }
                if points:
                    out[f"{stage}:{key}" + (f":{phase}" if phase else "")] = points
    return out


def arm_curves(arms: dict[str, list[Path]]) -> tuple[dict[str, dict[str, dict[str, Any]]], list[str]]:
    """curve -> arm -> {step, mean, min, max, n, over_steps}: the seeds' mean at the steps every
    seed logged, their range, and each seed's mean over its steps with its interval; and the
    trainer logs that could not be read (each message names the file; that run's arm then has no
    curves, and the comparison says why instead of failing its tables)."""
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    unreadable: list[str] = []
    for arm, runs in arms.items():
        per_run = []
        for r in runs:
            try:
                per_run.append(run_curves(r))
            except CurveError as err:
                unreadable.append(str(err))
                per_run.append({})
        for curve in sorted(set().union(*per_run)):
            series = [c[curve] for c in per_run if curve in c]
            if len(series) < len(runs):
                continue  # some seeds lack the stage: no comparable curve for this arm
            steps = sorted(set.intersection(*(set(s) for s in series)))
            at = [[s[t] for s in series] for t in steps]
            out[curve][arm] = {
                "step": steps,
                "mean": [sum(v) / len(v) for v in at],
                "min": [min(v) for v in at],
                "max": [max(v) for v in at],
                "n": len(series),
                "over_steps": interval([sum(s.values()) / len(s) for s in series]),
            }
    return dict(out), unreadable


def label(curve: str) -> str:
    stage, key = curve.split(":", 1)
    key, _, phase = key.partition(":")
    text = dict(CURVES[stage]).get(key, key)
    return f"{text}, phase {phase}" if phase else text


def plot_curves(curves: dict[str, dict[str, dict[str, Any]]], path: Path) -> Path | None:
    """One panel per curve, one line per arm (mean over seeds) with the seeds' range shaded."""
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ssp.core.atomic import write_atomic

    names = list(curves)
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    for ax, curve in zip(axes.flat, names, strict=False):
        for arm, c in curves[curve].items():
            (line,) = ax.plot(
                c["step"],
                c["mean"],
                label=f"{arm} (n={c['n']})",
                lw=1.2,
                marker="o" if len(c["step"]) < 20 else None,
            )
            ax.fill_between(c["step"], c["min"], c["max"], color=line.get_color(), alpha=0.15, lw=0)
        ax.set_title(label(curve), fontsize=10)
        ax.set_xlabel("step")
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("training curves: mean over seeds, range shaded")
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return path
