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
from ssp.core.manifest import Manifest
from ssp.core.outputs import MergeOutputs, ProbeOutputs, SFTOutputs
from ssp.stages.shared import heldout_comparison, heldout_pass_table
from ssp.stages.spec import StageSpec, check_probe_reward, engine_gpus, sampling_section
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


# ------------------------------------------------------------------ what the launcher knows of it

HELDOUT_TITLE = "Expert fusion: the spectrum model vs the last SFT checkpoint"


def report(recipe: Recipe, manifest: Manifest) -> list[str]:
    parts = ["## Expert fusion", ""]
    spectrum = manifest.outputs("merge")
    if spectrum.merged:
        weights = manifest.stage("merge")["metrics"]["weights"]
        parts += [
            f"Spectrum model `{spectrum.model}` = {', '.join(f'{c} x {w:.3f}' for c, w in weights.items())}.",
            "",
        ]
    else:
        parts += [f"Probing disabled: the spectrum model is the last SFT checkpoint `{spectrum.model}`.", ""]
    table = heldout_pass_table(recipe, manifest, "merge", HELDOUT_TITLE)
    return parts + ([table, ""] if table else [])


SPEC = StageSpec(
    "merge",
    run,
    needs=("data", "sft", "probe"),
    distributed=False,
    sections=lambda r: (r.merge, r.probe, sampling_section(r), r.data.prompt_suffix),
    gpus=engine_gpus,
    preflight=check_probe_reward,  # it samples with the probe's settings and reward
    report=report,
    results=lambda r, m: [t for t in [heldout_pass_table(r, m, "merge", HELDOUT_TITLE)] if t],
)
