"""Are the rollouts sampled from the policy being trained? Made visible, and checked.

When an engine other than the trainer samples the rollouts (vLLM, colocated or a server), the
trainer's log-probabilities of the sampled tokens differ from the engine's: numerics (bf16
kernels), sampling transforms, and, if something is wrong, stale weights. TRL corrects the gap
with a truncated or masked importance ratio ``pi_trainer / pi_engine`` (its
``vllm_importance_sampling_*`` options) and logs the ratio after the correction; this module
reports the raw ratio and how much of it the correction's bounds cut, and checks that weights
reached the engine.

- ``mismatch_stats``: per step, over the completion tokens of the batch, the raw token ratio's
  mean, min and max, the mean |Delta log p|, and the share of units (tokens, or sequences in TRL's
  ``sequence_*`` modes) whose ratio is outside ``[clip_min, clip_max]``: what the correction
  truncates or masks. Logged as ``mismatch/*``; summarised per phase.
- ``engine_logprobs`` / ``SyncCheckFailed``: the weight-sync check. A fixed prompt is sampled by the
  engine with top-p 1 (so the engine's log-probs are plain softmax ones at the rollout temperature,
  not renormalised over a nucleus) and the trainer scores the same tokens; if the mean
  |Delta log p| per token exceeds the tolerance, the stage stops naming it. At a phase's first step
  it catches an engine serving another model (a server started from the wrong folder); later it
  catches weights that did not reach the engine (TRL #5312: silently unsynced with sleep mode).
  Departure: the tolerance is absolute (nats per token); bf16 engines on GPU differ from an fp32
  trainer by ~0.01-0.05 on their own, so the default (0.1) flags drift larger than that, not
  the first few steps of a small learning rate.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ssp.core.errors import StageError


def mismatch_stats(
    trainer_logps: torch.Tensor,
    engine_logps: torch.Tensor,
    mask: torch.Tensor,
    *,
    sequence_level: bool,
    clip_min: float | None,
    clip_max: float | None,
) -> torch.Tensor:
    """Sums of this process's batch (so processes add up): [tokens, sum ratio, sum |dlogp|, min ratio,
    max ratio, units, units outside the bounds]. Tokens the engine gave no log-prob (NaN) are left out."""
    diff = trainer_logps.float() - engine_logps.float()
    valid = mask.bool() & ~torch.isnan(diff)
    d = diff[valid]
    lo = -math.inf if clip_min is None else clip_min
    hi = math.inf if clip_max is None else clip_max
    if sequence_level:
        units = torch.exp(torch.where(valid, diff, torch.zeros_like(diff)).sum(dim=1))[mask.bool().any(dim=1)]
    else:
        units = torch.exp(d)
    ratio = torch.exp(d)
    empty = d.numel() == 0
    return torch.tensor(
        [
            float(d.numel()),
            ratio.sum().item(),
            d.abs().sum().item(),
            math.inf if empty else ratio.min().item(),
            -math.inf if empty else ratio.max().item(),
            float(units.numel()),
            float(((units < lo) | (units > hi)).sum().item()),
        ],
        dtype=torch.float64,
    )


def reduce_stats(per_process: torch.Tensor) -> dict[str, float]:
    """[processes, 7] sums of ``mismatch_stats`` -> the logged metrics."""
    s = per_process.view(-1, 7)
    tokens, units = s[:, 0].sum().item(), s[:, 5].sum().item()
    if not tokens:
        return {}
    return {
        "mismatch/ratio_mean": s[:, 1].sum().item() / tokens,
        "mismatch/ratio_min": s[:, 3].min().item(),
        "mismatch/ratio_max": s[:, 4].max().item(),
        "mismatch/logp_abs_diff_mean": s[:, 2].sum().item() / tokens,
        "mismatch/frac_outside_bounds": s[:, 6].sum().item() / units if units else 0.0,
    }


def correction_in_use(args: Any) -> dict[str, Any]:
    """The importance-sampling correction TRL applies, for the log and the report."""
    if not getattr(args, "use_vllm", False):
        return {"engine": "trainer", "correction": "none needed (rollouts from the trained model)"}
    on = bool(args.vllm_importance_sampling_correction)
    return {
        "engine": f"vllm ({args.vllm_mode})",
        "correction": args.vllm_importance_sampling_mode if on else "off",
        "clip_min": args.vllm_importance_sampling_clip_min if on else None,
        "clip_max": args.vllm_importance_sampling_clip_max if on else None,
    }


class SyncCheckFailed(StageError):
    """The engine's log-probs of a fixed prompt disagree with the trainer's beyond the tolerance."""


def engine_logprobs(
    vllm_generation, prompt_ids: list[int], n: int, max_tokens: int
) -> list[list[float | None]]:
    """Log-prob of each token the rollout engine samples for ``n`` copies of ``prompt_ids``, with top-p 1,
    no top-k, min-p or penalty: TRL's own ``generate`` (sleep mode, server gathering and tensor
    parallelism as for rollouts) with its sampling settings swapped for the call. Returns
    (completion ids, log-probs) of this process's ``n`` completions."""
    plain = {"top_p": 1.0, "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0, "logprobs": 0}
    plain["max_completion_length"] = max_tokens
    saved = {k: getattr(vllm_generation, k) for k in plain} | {
        "generation_kwargs": vllm_generation.generation_kwargs
    }
    try:
        for k, v in plain.items():
            setattr(vllm_generation, k, v)
        vllm_generation.generation_kwargs = {}
        _, completion_ids, logprobs, _ = vllm_generation.generate(
            prompts=[prompt_ids] * n, images=None, num_generations=n
        )
    finally:
        for k, v in saved.items():
            setattr(vllm_generation, k, v)
    return [list(c) for c in completion_ids], [[lp[0] for lp in seq] for seq in logprobs]


def sync_verdict(step: int, diff: float, tokens: int, tolerance: float, where: str) -> dict[str, Any]:
    """The record of one check; raises SyncCheckFailed when ``diff`` is over ``tolerance``."""
    record = {"step": step, "logp_abs_diff_mean": diff, "tokens": tokens, "tolerance": tolerance}
    if not tokens:
        raise SyncCheckFailed(
            f"{where}: weight-sync check at step {step}: the engine returned no tokens to compare"
        )
    if diff > tolerance:
        raise SyncCheckFailed(
            f"{where}: the rollout engine's weights are not the trainer's at step {step}: a fixed prompt's "
            f"{tokens} sampled tokens differ by {diff:.4f} nats per token on average (tolerance {tolerance}). "
            "Weights did not reach the engine (vLLM sleep mode: TRL #5312) or the server serves another "
            "model; rl.rollout.sync_check_tolerance sets the bound."
        )
    return record
