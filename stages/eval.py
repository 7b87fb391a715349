"""The `eval` stage: the run's models on the recipe's benchmarks under the report's protocol.

    ssp stage eval recipes/tiny.yaml             # base, spectrum and signal of the run

``eval.models`` names models by alias (base, sft, spectrum, signal: the model the data, sft,
merge and rl stages hand on) or by folder / hub id; ``evaluation/evaluate.py`` samples and scores
them, one table per benchmark (``ssp eval`` runs the same outside a recipe).
"""

from __future__ import annotations

from pathlib import Path

from ssp.config.eval import MODEL_ALIASES
from ssp.config.recipe import STAGE_ORDER, Recipe
from ssp.core.checks import Checks
from ssp.core.context import StageContext, StageResult
from ssp.core.manifest import Manifest
from ssp.core.outputs import DataOutputs, EvalOutputs
from ssp.evaluation.benchmarks import HELDOUT_SPLIT_BENCHMARKS
from ssp.evaluation.evaluate import evaluate, model_names
from ssp.stages.shared import table_and_chart
from ssp.stages.spec import (
    StageSpec,
    benchmark_files,
    check_benchmarks,
    check_code_rewards,
    engine_gpus,
    sampling_section,
)


def resolve_models(recipe: Recipe, ctx: StageContext) -> dict[str, str]:
    """{display name: model folder or hub id} for ``eval.models``: an alias is the model its stage
    handed on (its outputs' ``model``, core/outputs.py), shown under the alias; anything else is taken as it is, shown
    as the shortest tail of its path no other model has (``model_names``)."""
    return model_names(
        [
            (m, ctx.inputs[MODEL_ALIASES[m]].model) if m in MODEL_ALIASES else (None, m)
            for m in recipe.eval.models
        ],
        "eval.models",
    )


def run(recipe: Recipe, ctx: StageContext) -> StageResult:
    models = resolve_models(recipe, ctx)
    summary = evaluate(
        models,
        recipe.eval.benchmarks,
        recipe.eval,
        ctx.stage_dir,
        # no held-out split when a build sets data.eval_problems_per_domain to 0
        default_sources=dict.fromkeys(HELDOUT_SPLIT_BENCHMARKS, ctx.upstream(DataOutputs).eval or ""),
        default_suffixes=dict.fromkeys(HELDOUT_SPLIT_BENCHMARKS, recipe.data.prompt_suffix),
        ctx=ctx,
        generation=recipe.generation,
    )
    keep = ("pass@1", "truncated", "mean_tokens")
    return StageResult(
        outputs=EvalOutputs(
            results=str(ctx.stage_dir / "results.json"),
            markdown=str(ctx.stage_dir / "results.md"),
            chart=str(ctx.stage_dir / "pass1.png"),
            completions=str(ctx.stage_dir / "completions"),
        ),
        metrics={
            "models": models,
            "results": {
                m: {
                    b: {k: v for k, v in r.items() if k in keep or k.startswith(("pass@", "cons@"))}
                    for b, r in per.items()
                }
                for m, per in summary["results"].items()
            },
        },
    )


# ------------------------------------------------------------------ what the launcher knows of it


def preflight(recipe: Recipe, checks: Checks) -> None:
    from ssp.evaluation.benchmarks import BENCHMARKS

    for j, model in enumerate(recipe.eval.models):
        if model not in MODEL_ALIASES:
            checks.model(model, f"eval.models[{j}]", tuple(MODEL_ALIASES))
    if "base" in recipe.eval.models and recipe.model.name_or_path != "tiny":
        checks.model(recipe.model.name_or_path, "model.name_or_path")
    check_benchmarks(recipe, checks)
    for j, bench in enumerate(recipe.eval.benchmarks):
        options = {**BENCHMARKS[bench.name].reward_options, **bench.reward_options}
        check_code_rewards(
            f"eval.benchmarks[{j}] ({bench.name})", BENCHMARKS[bench.name].reward, options, checks
        )


def report(recipe: Recipe, manifest: Manifest) -> list[str]:
    out = manifest.outputs("eval")
    return table_and_chart(
        "Evaluation",
        out.markdown,
        ("Pass@1 by model", out.chart),
        f"Every sampled completion with its score: `{out.completions}/` (Parquet).",
        recipe.run_dir,
    )


def _needs(r: Recipe) -> tuple[str, ...]:
    """The data stage (its held-out split), and the stages whose models it evaluates."""
    used = {MODEL_ALIASES[m] for m in r.eval.models if m in MODEL_ALIASES}
    return tuple(s for s in STAGE_ORDER if s == "data" or s in used)


def _external_files(r: Recipe) -> list[str]:
    models = [m for m in r.eval.models if m not in MODEL_ALIASES and Path(m).exists()]
    return models + benchmark_files(r)


SPEC = StageSpec(
    "eval",
    run,
    needs=_needs,
    distributed=False,
    sections=lambda r: (r.eval, sampling_section(r), r.data.prompt_suffix),
    external_files=_external_files,
    gpus=engine_gpus,
    preflight=preflight,
    report=report,
    results=lambda r, m: [Path(m.outputs("eval").markdown).read_text().rstrip()],
)
