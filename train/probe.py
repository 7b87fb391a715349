"""The `probe` stage: Pass@k of every SFT checkpoint on every subdomain, and the specialists.

    ssp stage probe recipes/tiny.yaml probe.metric=pass@1      # the Pass@1 ablation

SSP's Stage 1 (METHOD.md): P_i(t) = Pass@K of checkpoint M_t on probing set D_i, and the
specialist of subdomain i is argmax_t P_i(t). For each probed checkpoint the problems of all
domains are sampled together in one pass (``probe.n_samples`` each), scored with the
recipe's correctness reward, and turned into unbiased Pass@k per domain. Results are written
per checkpoint as soon as it is done, so an interrupted stage resumes at the next checkpoint.

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
import time
from pathlib import Path
from typing import Any

from data_pipeline.corpus import PROBLEM_FIELDS, chat_prompt, load_rows
from launch.atomic import write_atomic
from launch.context import StageContext, StageResult
from launch.errors import DataError
from launch.recipe import Recipe
from reward.outcome import ERROR, TIMEOUT, UNSCORABLE, CallReport, call_report
from train.generation import SamplingParams, make_generator
from train.pass_at_k import per_domain

log = logging.getLogger("ssp")


def probed_checkpoints(checkpoints: list[str], every: int) -> list[str]:
    """Every m-th checkpoint counted back from the last, which is always included."""
    return checkpoints[::-1][::every][::-1]


def sampling(recipe: Recipe) -> SamplingParams:
    p = recipe.probe
    return SamplingParams(
        n=p.n_samples,
        temperature=p.temperature,
        top_p=p.top_p,
        top_k=p.top_k,
        max_new_tokens=p.max_new_tokens,
        seed=p.seed,
    )


def load_probe_sets(recipe: Recipe, ctx: StageContext) -> dict[str, list[dict[str, Any]]]:
    available = ctx.inputs["data"]["probe"]
    domains = recipe.probe.domains or list(available)
    unknown = [d for d in domains if d not in available]
    if unknown:
        raise DataError(
            f"probe.domains: no probing set for {unknown}; the data stage wrote {sorted(available)}"
        )
    return {d: load_rows(available[d], PROBLEM_FIELDS, f"probe/{d}") for d in domains}


def sample_and_score(generator, rows, reward, params: SamplingParams, desc: str, suffix: str = ""):
    """(completions, scores, generation seconds, CallReport): ``params.n`` samples per row, flattened
    row-major, each scored by ``reward`` with the row's other columns; the report says which samples
    were scored, unscorable, timed out or errored."""
    start = time.monotonic()
    outs = generator.generate([chat_prompt(r["problem"], suffix) for r in rows], params, desc=desc)
    seconds = time.monotonic() - start
    flat = [c for o in outs for c in o]
    too_long = [
        r["id"] for r, o in zip(rows, outs, strict=True) if o and o[0].finish_reason == "prompt_too_long"
    ]
    if too_long:
        log.warning(
            "%s: %d prompts longer than the context, scored 0: problem ids %s",
            desc,
            len(too_long),
            too_long[:50],
        )
    columns = {k: [r[k] for r in rows for _ in range(params.n)] for k in rows[0] if k not in ("problem",)}
    scores = reward([c.text for c in flat], **columns)
    return flat, scores, seconds, call_report(reward, scores)


def failure_counts(report: CallReport) -> dict[str, int]:
    """{"unscorable", "timeouts", "errors"}: samples of a call that have no score, by cause."""
    c = report.counts
    return {"unscorable": c[UNSCORABLE], "timeouts": c[TIMEOUT], "errors": c[ERROR]}


def save_completions(path: Path, rows, flat, scores, report: CallReport, n: int, **extra) -> None:
    """Every sample of a scoring pass as Parquet: problem id, sample index, text, tokens, finish
    reason, score and the reward's status for it (plus ``extra`` columns, one value per sample)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "problem_id": [r["id"] for r in rows for _ in range(n)],
            "sample": [j for _ in rows for j in range(n)],
            "text": [c.text for c in flat],
            "num_tokens": [c.num_tokens for c in flat],
            "finish_reason": [c.finish_reason for c in flat],
            **extra,
            "score": scores,
            "status": report.statuses,
        }
    )
    write_atomic(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def score_model(
    generator,
    rows: list[dict[str, Any]],
    reward,
    params: SamplingParams,
    ks: list[int],
    desc: str,
    suffix: str = "",
    completions_file: Path | None = None,
) -> dict[str, Any]:
    """Sample ``rows`` once, score, and aggregate Pass@k per domain (and "all"); with
    ``completions_file``, keep every sample there."""
    flat, scores, seconds, report = sample_and_score(generator, rows, reward, params, desc, suffix)
    per_problem = []
    for i, r in enumerate(rows):
        s = scores[i * params.n : (i + 1) * params.n]
        per_problem.append((r["domain"], params.n, sum(1 for x in s if x == 1.0)))
    if completions_file is not None:
        save_completions(completions_file, rows, flat, scores, report, params.n)
    tokens = sum(c.num_tokens for c in flat)
    return {
        "pass": per_domain(per_problem, sorted({1, *ks})),
        "correct_per_problem": [c for _, _, c in per_problem],  # in row order, out of params.n
        "samples": len(flat),
        **failure_counts(report),
        "truncated": sum(c.finish_reason == "length" for c in flat) / len(flat),
        "mean_tokens": tokens / len(flat),
        "tokens_per_second": tokens / seconds if seconds else None,
    }


class ModelSampler:
    """Scores several models on the same rows with one generator (weights swapped in, not a new
    engine per model) and a correctness reward; closes both on exit.

        with ModelSampler(recipe) as sampler:
            result = sampler.score(model_dir, rows, desc="probe checkpoint-300")

    Sampling settings and reward default to the probe's; the RL pass-rate filter passes its
    phase's own."""

    def __init__(self, recipe: Recipe, params: SamplingParams | None = None, reward_spec=None):
        from reward import get_reward

        self.cfg, self.params = recipe.probe, params or sampling(recipe)
        self.generation = recipe.generation
        self.suffix = recipe.data.prompt_suffix
        spec = reward_spec or self.cfg.reward
        self.reward = get_reward(spec.name, **spec.options)
        self.generator = None

    def score(
        self, model_dir: str, rows: list[dict[str, Any]], desc: str, completions_file: Path | None = None
    ) -> dict[str, Any]:
        if self.generator is None:
            self.generator = make_generator(model_dir, self.generation, batch_size=self.cfg.batch_size)
        else:
            self.generator.load(model_dir)
        return score_model(
            self.generator,
            rows,
            self.reward,
            self.params,
            self.cfg.k,
            desc=desc,
            suffix=self.suffix,
            completions_file=completions_file,
        )

    def __enter__(self) -> ModelSampler:
        return self

    def __exit__(self, *exc) -> None:
        if self.generator is not None:
            self.generator.close()
        if hasattr(self.reward, "close"):
            self.reward.close()


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
    failures = list(FAILURE_COLUMNS.values())
    lines = [
        f"Probe: {key} per checkpoint and subdomain (specialists in bold); samples without a score "
        "(counted as wrong) on the right",
        "",
        "| checkpoint | " + " | ".join(domains + failures) + " |",
        "|---" * (len(domains) + len(failures) + 1) + "|",
    ]
    for ckpt, row in table.items():
        cells = [
            f"**{row[d][key]:.3f}**" if specialists[d] == ckpt else f"{row[d][key]:.3f}" for d in domains
        ]
        cells += [str(stats[ckpt].get(k, 0)) for k in FAILURE_COLUMNS]
        lines.append(f"| {Path(ckpt).name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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
    from train.checkpoints import check_model_folder, checkpoint_step

    cfg = recipe.probe
    checkpoints = ctx.inputs["sft"]["checkpoints"]
    final = ctx.inputs["sft"]["final"]
    if not cfg.enabled:
        log.info("probe: disabled (probe.enabled=false): the last SFT checkpoint is the spectrum model")
        return StageResult(
            outputs={"enabled": False, "specialists": {}, "final": final}, metrics={"enabled": False}
        )
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
    with ModelSampler(recipe) as sampler:
        for ckpt in probed:
            result_file = out_dir / f"{Path(ckpt).name}.json"
            if result_file.exists():  # done by an interrupted earlier attempt
                result = json.loads(result_file.read_text())
                log.info("probe: %s already probed, reusing %s", Path(ckpt).name, result_file)
            else:
                parquet = samples_dir / f"{Path(ckpt).name}.parquet" if cfg.save_completions else None
                result = sampler.score(ckpt, rows, desc=f"probe {Path(ckpt).name}", completions_file=parquet)
                write_atomic(result_file, json.dumps(result, indent=2))
                log.info(
                    "probe: %s %s=%s (%.0f tokens/s)",
                    Path(ckpt).name,
                    key,
                    {d: round(result["pass"][d][key], 3) for d in domains},
                    result["tokens_per_second"] or 0,
                )
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
        outputs={
            "enabled": True,
            "specialists": specialists,
            "final": final,
            "domains": domains,
            "table": str(ctx.stage_dir / "probe_table.json"),
            "markdown": str(ctx.stage_dir / "probe_table.md"),
            "heatmap": str(ctx.stage_dir / "probe_heatmap.png"),
        },
        metrics={
            "metric": key,
            "checkpoints_probed": len(table),
            "specialists": {d: Path(c).name for d, c in specialists.items()},
            "tokens_per_second_mean": sum(tps) / len(tps) if tps else None,
        },
    )


def main() -> None:
    from launch.runner import stage_main

    stage_main("probe")


if __name__ == "__main__":
    main()
