"""The `merge` stage: the probe's specialists fused into the "spectrum" model.

    ssp stage merge recipes/tiny.yaml

M_merge = sum_i w_i * M*_i over the specialist M*_i of each probed subdomain (docs/method.md), streamed
by ``train/fusion.py``. Weights are ``merge.weights`` per domain (empty: uniform 1/N, the report);
a checkpoint chosen by several domains gets their summed weight. With probing disabled (the
diversity ablation) the spectrum model is the last SFT checkpoint. With ``merge.eval_heldout``
the merged model and the last SFT checkpoint are sampled on the held-out set side by side.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from ssp.config.recipe import Recipe
from ssp.core.context import StageContext, StageResult
from ssp.core.outputs import MergeOutputs, ProbeOutputs, SFTOutputs
from ssp.stages.shared import heldout_comparison
from ssp.train.fusion import MergeError, check_weights, merge_checkpoints

log = logging.getLogger("ssp")

SPECTRUM = "spectrum (merged)"  # the merged model's row in the held-out table (a display name)


def checkpoint_weights(specialists: dict[str, str], domain_weights: dict[str, float]) -> dict[str, float]:
    """Weight per unique checkpoint: a checkpoint chosen by several domains gets their summed weight."""
    unknown = sorted(set(domain_weights) - set(specialists))
    if unknown:
        raise MergeError(
            f"merge.weights names domains that were not probed: {unknown} (probed: {sorted(specialists)})"
        )
    missing = sorted(set(specialists) - set(domain_weights)) if domain_weights else []
    if missing:
        raise MergeError(f"merge.weights has no weight for domains {missing}")
    per_ckpt: dict[str, float] = defaultdict(float)
    for domain, ckpt in specialists.items():
        per_ckpt[ckpt] += domain_weights[domain] if domain_weights else 1.0 / len(specialists)
    return dict(per_ckpt)


def run(recipe: Recipe, ctx: StageContext) -> StageResult:
    probe = ctx.upstream(ProbeOutputs)
    last_sft = ctx.upstream(SFTOutputs).model
    if not probe.enabled:
        log.info("merge: probing disabled, the spectrum model is the last SFT checkpoint %s", last_sft)
        return StageResult(outputs=MergeOutputs(model=last_sft, merged=False), metrics={"merged": False})
    weights = checkpoint_weights(probe.specialists, recipe.merge.weights)
    normalized = check_weights(list(weights.values()), recipe.merge.normalize, "merge.normalize: true")
    sources = list(zip(weights, normalized, strict=True))
    for ckpt, w in sources:
        log.info("merge: %s x %.4f", Path(ckpt).name, w)
    model = merge_checkpoints(
        sources, ctx.stage_dir / "model", overwrite=True, info={"specialists": probe.specialists}
    )
    metrics: dict[str, Any] = {"weights": {Path(c).name: w for c, w in sources}}
    spectrum_scores = None
    if recipe.merge.eval_heldout:
        metrics["heldout"] = heldout_comparison(
            recipe, ctx, {SPECTRUM: str(model), f"last SFT ({Path(last_sft).name})": last_sft}
        )
        (ctx.stage_dir / "heldout.json").write_text(json.dumps(metrics["heldout"], indent=2))
        spectrum_scores = metrics["heldout"][SPECTRUM]
    return StageResult(
        outputs=MergeOutputs(model=str(model), merged=True, heldout=spectrum_scores), metrics=metrics
    )
