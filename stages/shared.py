"""What several stages measure the same way: the probe's sampler, and the held-out comparison
that merge (merged vs last SFT) and rl (before vs after) both report, with its report table; a
report section made of a stage's table and chart (probe, eval).

Not a stage: stages import this; it imports no stage.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ssp.config.recipe import Recipe
from ssp.core.context import StageContext
from ssp.core.corpus import PROBLEM_FIELDS, load_rows
from ssp.core.manifest import Manifest
from ssp.core.outputs import DataOutputs
from ssp.core.tables import markdown_table
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
        params or p.params(seed=p.seed),
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


def heldout_pass_table(recipe: Recipe, manifest: Manifest, stage: str, title: str) -> str | None:
    """Markdown table of the held-out Pass@1 / Pass@k that ``heldout_comparison`` recorded in
    ``stage``'s metrics (None if it recorded none)."""
    heldout = manifest.stage(stage)["metrics"].get("heldout")
    if not heldout:
        return None
    keys = list(next(iter(heldout.values()))["pass"]["all"])
    domains = [d for d in next(iter(heldout.values()))["pass"] if d != "all"]
    out = [
        title,
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


def table_and_chart(title: str, markdown: str, chart: tuple[str, str], note: str, run_dir: Path) -> list[str]:
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
