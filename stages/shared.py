"""What several stages measure the same way: the probe's sampler, and the held-out comparison
that merge (merged vs last SFT) and rl (before vs after) both report.

Not a stage: stages import this; it imports no stage.
"""

from __future__ import annotations

from typing import Any

from ssp.config.recipe import Recipe
from ssp.core.context import StageContext
from ssp.core.corpus import PROBLEM_FIELDS, load_rows
from ssp.core.outputs import DataOutputs
from ssp.reward.config import RewardSpec
from ssp.sampling.generation import SamplingParams
from ssp.sampling.scoring import ModelSampler


def probe_sampler(
    recipe: Recipe,
    params: SamplingParams | None = None,
    reward: RewardSpec | None = None,
    reward_key: str = "probe.reward",
) -> ModelSampler:
    """A sampler with the probe's engine, batch size, Pass@k and prompt suffix; sampling settings
    and reward default to the probe's (the RL pass-rate filter passes its phase's own, and the
    recipe key of that reward for errors)."""
    p = recipe.probe
    return ModelSampler(
        recipe.generation,
        params or SamplingParams.from_settings(p, seed=p.seed),
        reward or p.reward,
        ks=p.k,
        batch_size=p.batch_size,
        suffix=recipe.data.prompt_suffix,
        where=reward_key,
    )


def heldout_comparison(recipe: Recipe, ctx: StageContext, models: dict[str, str]) -> dict[str, Any]:
    """Pass@1 and Pass@k of each model on the data stage's held-out set, with the probe's settings."""
    rows = load_rows(ctx.upstream(DataOutputs).eval, PROBLEM_FIELDS, "eval")
    with probe_sampler(recipe) as sampler:
        return sampler.compare(models, rows, desc="held-out")
