"""``runs/<name>/report.md``: what each completed stage produced, and what it cost.

The stage table, then each completed stage's own section in pipeline order (``SPEC.report`` in
its module: the data card, the SFT loss curve (PNG) with the greedy held-out check, the probe
heatmap, the fusion weights, the RL curves, the eval table and chart per model), then the cost
table beside the reference run's.
"""

from __future__ import annotations

from pathlib import Path

from ssp.config.recipe import Recipe
from ssp.core.manifest import Manifest
from ssp.core.tables import markdown_table
from ssp.launch.stages import STAGES


def results_table(recipe: Recipe) -> str:
    """The tables `make demo` prints: each completed stage's (``SPEC.results``: SFT's greedy check,
    the held-out comparisons of merge and rl, the eval table per model), then the cost table."""
    manifest = Manifest(recipe.run_dir)
    tables = [
        t for name, spec in STAGES.items() if manifest.completed(name) for t in spec.results(recipe, manifest)
    ]
    return "\n\n".join([*tables, cost_table(manifest)])


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
    for name, spec in STAGES.items():
        if manifest.completed(name):
            parts += spec.report(recipe, manifest)
    parts += ["## Cost", "", cost_table(manifest), ""]
    path = run_dir / "report.md"
    path.write_text("\n".join(parts))
    return path
