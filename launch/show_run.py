"""``ssp show-run RUN``: what a run logged to W&B, read from its offline files, on the terminal.

A run's W&B runs are offline by default (``tracking.mode``); looking at them used to need an
account and ``wandb sync``. This prints, per W&B run of the run folder (one per stage; a resumed
stage's files are joined), each numeric metric's points, first, min, max and last value with a
sparkline (wandb's own ``sparkify``, what W&B prints at the end of an online run), and with
``--steps`` the step-by-step table of the chosen metrics.

Rows are keyed by ``train/global_step`` when a row has one (the trainer's metrics and ssp's cost
metrics of one step arrive as two W&B rows and are joined), else by W&B's ``_step``. W&B's own
bookkeeping (``_runtime``, ``_timestamp``, ``_step``) and TRL's ``profiling/`` timers are left out
unless ``--keys`` names them.
"""

from __future__ import annotations

import fnmatch
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from ssp.core.errors import DataError
from ssp.core.tables import markdown_table
from ssp.launch.wandb_file import read

HIDDEN = ("_*", "profiling/*")
SPARK_POINTS = 40


def wandb_runs(run_dir: Path) -> dict[str, list[Path]]:
    """The run folder's offline W&B run files by W&B run id, oldest first (a resume adds a file)."""
    folder = run_dir / "wandb"
    files = [*folder.glob("offline-run-*/run-*.wandb"), *folder.glob("run-*/run-*.wandb")]
    if not files:
        raise DataError(
            f"{run_dir}: no W&B run files under {folder} (was tracking.report_to wandb? "
            "online runs are on wandb.ai instead)"
        )
    by_id: dict[str, list[Path]] = defaultdict(list)
    for f in sorted(files, key=lambda f: (f.parent.name.split("-")[-2], str(f))):  # start time, then path
        by_id[f.stem.removeprefix("run-")].append(f)
    return dict(by_id)


def rows_by_step(history: list[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """{step: {key: number}}: rows of one step joined, non-numbers (tables, images) left out."""
    out: dict[int, dict[str, float]] = defaultdict(dict)
    for row in history:
        step = row.get("train/global_step", row.get("_step"))
        if not isinstance(step, int | float):
            continue
        for k, v in row.items():
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "train/global_step":
                out[int(step)][k] = float(v)
    return dict(sorted(out.items()))


def _wanted(key: str, patterns: list[str] | None) -> bool:
    if patterns:
        return any(fnmatch.fnmatchcase(key, p) or p in key for p in patterns)
    return not any(fnmatch.fnmatchcase(key, p) for p in HIDDEN)


def _spark(values: list[float]) -> str:
    from wandb.sdk.lib.sparkline import sparkify

    if len(values) > SPARK_POINTS:  # the mean of each of SPARK_POINTS equal slices
        n = len(values)
        values = [
            sum(s) / len(s)
            for i in range(SPARK_POINTS)
            if (s := values[i * n // SPARK_POINTS : (i + 1) * n // SPARK_POINTS])
        ]
    return sparkify(values)


def _num(v: float) -> str:
    if math.isnan(v) or math.isinf(v):
        return str(v)
    return f"{v:.4g}"


def show_run(
    run_dir: Path, keys: list[str] | None = None, stage: str | None = None, steps: bool = False
) -> str:
    """The markdown that ``ssp show-run`` prints (module docstring)."""
    parts = [f"# {run_dir}: W&B runs (read from the offline files)"]
    shown = 0
    for run_id, files in wandb_runs(run_dir).items():
        read_files = [read(f) for f in files]
        info = read_files[0].run_info()
        if stage and stage not in (info["job_type"], info["name"].rsplit("/", 1)[-1]):
            continue
        shown += 1
        by_step = rows_by_step([row for f in read_files for row in f.history()])
        names = sorted({k for row in by_step.values() for k in row if _wanted(k, keys)})
        head = (
            f"## {info['name']} (group {info['group']}, id {run_id}, {len(by_step)} logged steps, "
            f"{len(files)} file{'s' if len(files) > 1 else ''})"
        )
        notes = [
            f"{f.path}: unreadable from byte {f.truncated_at} on (still being written, or killed); "
            "the records before it are shown"
            if f.truncated_at is not None
            else f"{f.path}: no exit record (the stage is still running, or was killed)"
            for f in read_files
            if not f.finished
        ]
        parts.append("\n\n".join([head, *notes]))
        if not names:
            parts.append("(no numeric metrics" + (f" matching {keys}" if keys else "") + ")")
            continue
        rows = []
        for k in names:
            values = [row[k] for row in by_step.values() if k in row]
            rows.append(
                [
                    k,
                    len(values),
                    _num(values[0]),
                    _num(min(values)),
                    _num(max(values)),
                    _num(values[-1]),
                    _spark(values),
                ]
            )
        parts.append(markdown_table(["metric", "points", "first", "min", "max", "last", "curve"], rows))
        if steps:
            table = [
                [step, *(_num(row[k]) if k in row else "" for k in names)]
                for step, row in by_step.items()
                if any(k in row for k in names)
            ]
            parts.append(markdown_table(["step", *names], table))
    if stage and not shown:
        raise DataError(f"{run_dir}: no W&B run of stage {stage!r}")
    return "\n\n".join(parts) + "\n"
