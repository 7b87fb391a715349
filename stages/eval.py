"""The `eval` stage: the run's models on the recipe's benchmarks under the report's protocol.

    ssp stage eval recipes/tiny.yaml             # base, spectrum and signal of the run

``eval.models`` names models by alias (base, sft, spectrum, signal: the model the data, sft,
merge and rl stages hand on) or by folder / hub id; ``evaluation/evaluate.py`` samples and scores
them, one table per benchmark (``ssp eval`` runs the same outside a recipe).
"""

from __future__ import annotations

from ssp.config.eval import MODEL_ALIASES
from ssp.config.recipe import Recipe
from ssp.core.context import StageContext, StageResult
from ssp.core.outputs import DataOutputs, EvalOutputs
from ssp.evaluation.evaluate import evaluate, model_names


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
        default_sources={"tiny_heldout": ctx.upstream(DataOutputs).eval or ""},
        default_suffixes={"tiny_heldout": recipe.data.prompt_suffix},
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
