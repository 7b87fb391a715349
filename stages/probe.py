"""The `probe` stage: Pass@k of every SFT checkpoint on every subdomain, and the specialists.

    ssp stage probe recipes/tiny.yaml probe.metric=pass@1      # the Pass@1 ablation

SSP's Stage 1 (docs/method.md): P_i(t) = Pass@K of checkpoint M_t on probing set D_i, and the
specialist of subdomain i is argmax_t P_i(t). For each probed checkpoint the problems of all
domains are sampled together in one pass (``probe.n_samples`` each), scored with the
recipe's correctness reward, and turned into unbiased Pass@k per domain. Results are written
per checkpoint as soon as it is done, so an interrupted stage resumes at the next checkpoint
(a checkpoint's result is reused only when made from the same checkpoint content, probing rows,
probe settings and engine: ``core/reuse.py``).

Choices the report leaves open, exposed in the recipe: K (``probe.k``, ``probe.select_k``),
which checkpoints (``probe.every``), sampling settings, and ties, which go to the later
checkpoint (more training at equal diversity). Samples the reward could not score
(unscorable gold, verifier timeout or error: ``reward/outcome.py``) count as incorrect and are
counted in the table per checkpoint; a reward failing on too many stops the stage. Every sample
is kept with its score in ``probe/completions/<checkpoint>.parquet`` (``probe.save_completions``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ssp.config.recipe import Recipe, to_container
from ssp.core.atomic import write_atomic
from ssp.core.context import StageContext, StageResult
from ssp.core.corpus import PROBLEM_FIELDS, load_rows
from ssp.core.errors import DataError
from ssp.core.manifest import Manifest
from ssp.core.model_folder import check_model_folder
from ssp.core.model_identity import model_identity
from ssp.core.outputs import DataOutputs, ProbeOutputs, SFTOutputs
from ssp.core.progress import Progress
from ssp.core.reuse import Stamp, rows_digest
from ssp.core.tables import markdown_table
from ssp.sampling.generation import engine_record
from ssp.stages.shared import probe_sampler, table_and_chart
from ssp.stages.spec import StageSpec, check_probe_reward, engine_gpus, sampling_section

log = logging.getLogger("ssp")


def probed_checkpoints(checkpoints: list[str], every: int) -> list[str]:
    """Every m-th checkpoint counted back from the last, which is always included."""
    return checkpoints[::-1][::every][::-1]


def load_probe_sets(recipe: Recipe, ctx: StageContext) -> dict[str, list[dict[str, Any]]]:
    available = ctx.upstream(DataOutputs).probe
    domains = recipe.probe.domains or list(available)
    unknown = [d for d in domains if d not in available]
    if unknown:
        raise DataError(
            f"probe.domains: no probing set for {unknown}; the data stage wrote {sorted(available)}"
        )
    return {d: load_rows(available[d], PROBLEM_FIELDS, f"probe/{d}") for d in domains}


def select_specialists(
    table: dict[str, dict[str, dict[str, float]]], domains: list[str], key: str
) -> dict[str, str]:
    """argmax over checkpoints (in training order) of ``key``, per domain; ties go to the later one."""
    best = {}
    for d in domains:
        best[d] = max(enumerate(table), key=lambda it: (table[it[1]][d][key], it[0]))[1]
    return best


FAILURE_COLUMNS = {"unscorable": "unscorable", "timeouts": "timed out", "errors": "errors"}


def _markdown(table, domains, key, specialists, stats) -> str:
    """The probe table, with each checkpoint's samples that got no score (they count as wrong)."""
    rows = [
        [Path(ckpt).name]
        + [f"**{row[d][key]:.3f}**" if specialists[d] == ckpt else f"{row[d][key]:.3f}" for d in domains]
        + [stats[ckpt].get(k, 0) for k in FAILURE_COLUMNS]
        for ckpt, row in table.items()
    ]
    title = (
        f"Probe: {key} per checkpoint and subdomain (specialists in bold); samples without a score "
        "(counted as wrong) on the right"
    )
    header = ["checkpoint", *domains, *FAILURE_COLUMNS.values()]
    return f"{title}\n\n{markdown_table(header, rows)}\n"


def heatmap(table, domains, key, specialists, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ckpts = list(table)
    values = [[table[c][d][key] for d in domains] for c in ckpts]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(domains), 1.0 + 0.45 * len(ckpts)))
    im = ax.imshow(values, cmap="viridis", aspect="auto", vmin=0, vmax=max(1e-9, max(map(max, values))))
    ax.set_xticks(range(len(domains)), domains, rotation=20)
    ax.set_yticks(range(len(ckpts)), [Path(c).name for c in ckpts])
    for i, c in enumerate(ckpts):
        for j, d in enumerate(domains):
            ax.text(
                j,
                i,
                f"{values[i][j]:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="red" if specialists[d] == c else "white",
                fontweight="bold" if specialists[d] == c else None,
            )
    ax.set_title(f"probe {key} (red: specialist)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def run(recipe: Recipe, ctx: StageContext) -> StageResult:
    from ssp.train.checkpoints import (
        checkpoint_step,  # imports transformers' Trainer: ~3 s, not at `ssp` start-up
    )

    cfg = recipe.probe
    checkpoints = ctx.upstream(SFTOutputs).checkpoints
    if not cfg.enabled:
        log.info("probe: disabled (probe.enabled=false): the last SFT checkpoint is the spectrum model")
        return StageResult(outputs=ProbeOutputs(enabled=False, specialists={}), metrics={"enabled": False})
    sets = load_probe_sets(recipe, ctx)
    domains = list(sets)
    rows = [r for d in domains for r in sets[d]]
    key = cfg.selection_key
    probed = probed_checkpoints(checkpoints, cfg.every)
    for ckpt in probed:  # a broken checkpoint fails now, naming its file, not after hours of sampling
        check_model_folder(ckpt)
    out_dir = ctx.stage_dir / "by_checkpoint"
    out_dir.mkdir(parents=True, exist_ok=True)
    samples_dir = ctx.stage_dir / "completions"
    if cfg.save_completions:
        samples_dir.mkdir(exist_ok=True)
    table, stats = {}, {}
    progress = Progress(len(probed))
    settings = {
        "problems": rows_digest(rows),
        "probe": to_container(cfg),
        "prompt_suffix": recipe.data.prompt_suffix,
        "engine": engine_record(recipe.generation, cfg.batch_size),
    }
    with probe_sampler(recipe) as sampler:
        for ckpt in probed:
            result_file = out_dir / f"{Path(ckpt).name}.json"
            stamp = Stamp.of({"checkpoint": model_identity(ckpt), **settings})
            reused = result_file.exists() and stamp.matches(
                Stamp.read(result_file), f"probe {Path(ckpt).name}"
            )
            if reused:  # done by an interrupted earlier attempt, from this checkpoint and settings
                result = json.loads(result_file.read_text())["result"]
                log.info("probe: %s already probed, reusing %s", Path(ckpt).name, result_file)
            else:
                parquet = samples_dir / f"{Path(ckpt).name}.parquet" if cfg.save_completions else None
                result = sampler.score(ckpt, rows, desc=f"probe {Path(ckpt).name}", completions_file=parquet)
                write_atomic(result_file, json.dumps({**stamp.as_dict(), "result": result}, indent=2))
                log.info(
                    "probe: %s %s=%s (%.0f tokens/s)",
                    Path(ckpt).name,
                    key,
                    {d: round(result["pass"][d][key], 3) for d in domains},
                    result["tokens_per_second"] or 0,
                )
            log.info("probe: checkpoints %s", progress.step(timed=not reused))
            table[ckpt] = result["pass"]
            stats[ckpt] = {k: v for k, v in result.items() if k != "pass"}
            ctx.log(
                {f"probe/{d}/{key}": result["pass"][d][key] for d in domains}
                | {f"probe/{k}": result.get(k, 0) for k in FAILURE_COLUMNS}
                | {"probe/step": checkpoint_step(ckpt)}
            )
            ctx.check_budget(f"results of the probed checkpoints are in {out_dir}")
    specialists = select_specialists(table, domains, key)
    write_atomic(
        ctx.stage_dir / "probe_table.json",
        json.dumps({"metric": key, "specialists": specialists, "table": table, "stats": stats}, indent=2),
    )
    write_atomic(ctx.stage_dir / "probe_table.md", _markdown(table, domains, key, specialists, stats))
    heatmap(table, domains, key, specialists, ctx.stage_dir / "probe_heatmap.png")
    tps = [s["tokens_per_second"] for s in stats.values() if s.get("tokens_per_second")]
    return StageResult(
        outputs=ProbeOutputs(
            enabled=True,
            specialists=specialists,
            domains=domains,
            table=str(ctx.stage_dir / "probe_table.json"),
            markdown=str(ctx.stage_dir / "probe_table.md"),
            heatmap=str(ctx.stage_dir / "probe_heatmap.png"),
        ),
        metrics={
            "metric": key,
            "checkpoints_probed": len(table),
            "specialists": {d: Path(c).name for d, c in specialists.items()},
            "tokens_per_second_mean": sum(tps) / len(tps) if tps else None,
        },
    )


# ------------------------------------------------------------------ what the launcher knows of it


def report(recipe: Recipe, manifest: Manifest) -> list[str]:
    out = manifest.outputs("probe")
    if not out.enabled:
        return []
    throughput = manifest.stage("probe")["metrics"]["tokens_per_second_mean"]
    return table_and_chart(
        "Diversity probing",
        out.markdown,
        ("probe heatmap", out.heatmap),
        f"Mean sampling throughput: {throughput:.0f} tokens/s.",
        recipe.run_dir,
    )


SPEC = StageSpec(
    "probe",
    run,
    needs=("data", "sft"),
    distributed=False,
    sections=lambda r: (r.probe, sampling_section(r), r.data.prompt_suffix),
    gpus=engine_gpus,
    preflight=check_probe_reward,
    report=report,
)
