"""Dynamic sampling: every RL step trains on groups that carry a learning signal.

A group whose G completions all get the same correctness reward (all right or all wrong) has zero
advantage under GRPO and MGPO alike: it costs a rollout and teaches nothing. DAPO (arXiv 2503.14476)
drops such groups and samples fresh prompts until the batch is full; verl calls it
``filter_groups``, OpenRLHF and NeMo-RL have it too; TRL 1.16 does not (its issue #3708). This module
is that loop for TRL's GRPOTrainer, with the choices where DAPO is silent made explicit:

- A group is kept when its *correctness* rewards differ (the reward MGPO's p_c comes from); a
  format bonus alone does not keep a group.
- Refills draw fresh prompts from the phase's prompt set in a seeded order of their own
  (``refill_indices``): a pure function of (seed, step, round), so a resumed phase draws the same
  prompts; the main data order is TRL's and untouched.
- Each process keeps whole groups of its own (its local batch must hold whole groups). Every rank
  sees every rank's rewards (TRL gathers them), so every rank takes the same decisions: which groups
  are kept, when to stop refilling. A process keeps its first ``local groups`` mixed groups in the
  order drawn.
- The bound: at most ``max_refill_rounds`` extra rounds per step, each the size of the step's
  generation batch. If the batch is still short, the rest is filled with dropped groups whose
  completion mask is zeroed: they add no loss and no tokens to the normaliser. Such steps are
  counted (``dynamic_sampling/filler_groups`` > 0), never hidden.
- The advantages of a kept group are those computed in its own round; with ``scale_rewards`` =
  ``group`` or ``none`` they depend on the group alone, so moving groups between rounds changes
  nothing (``batch`` scaling would: refused in MGPOConfig).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch

# tensors [B, ...] that rows are taken from; the value fills padding (prompts are left-padded,
# completions right-padded)
_LEFT_PADDED = {"prompt_ids": None, "prompt_mask": 0}
_RIGHT_PADDED = {
    "completion_ids": None,
    "completion_mask": 0,
    "old_per_token_logps": 0.0,
    "sampling_per_token_logps": 0.0,
    "ref_per_token_logps": 0.0,
    "importance_sampling_ratio": 1.0,
    "tool_mask": 1,
}
_PER_ROW = {"advantages"}


def mixed_groups(correct: torch.Tensor, num_generations: int) -> torch.Tensor:
    """[B] correctness flags (groups contiguous) -> [B / G] True where a group's flags differ."""
    per_group = correct.bool().view(-1, num_generations)
    return per_group.any(dim=1) & ~per_group.all(dim=1)


@lru_cache(maxsize=8)
def _permutation(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    order = list(range(n))
    random.Random(f"ssp-refill:{seed}:{epoch}").shuffle(order)
    return tuple(order)


def refill_indices(n: int, seed: int, start: int, count: int) -> list[int]:
    """Prompt indices ``start .. start + count`` of an endless stream of seeded permutations of ``n``."""
    return [_permutation(n, seed, k // n)[k % n] for k in range(start, start + count)]


@dataclass
class RoundResult:
    """One generation round as the trainer scored it: this process's rows, every process's flags."""

    output: dict[str, Any]  # GRPOTrainer's batch dict, this process's rows
    correct: torch.Tensor  # [B_all] correctness of every process's completions (gathered)


@dataclass
class FillStats:
    rounds: int = 0
    groups_drawn: int = 0
    mixed_drawn: int = 0
    mixed_first_round: int = 0
    groups_first_round: int = 0
    kept: int = 0
    filler: int = 0
    kept_groups: list[tuple[int, int]] = field(default_factory=list)  # (round, global group) of every rank


def fill_batch(
    score_round: Callable[[int], RoundResult],
    *,
    num_generations: int,
    local_rows: int,
    process_index: int,
    num_processes: int,
    max_refill_rounds: int,
    pad_token_id: int,
) -> tuple[dict[str, Any], FillStats]:
    """Run rounds (``score_round(r)``: r = 0 is the dataloader's batch, r >= 1 refills) until every
    process holds ``local_rows / G`` mixed groups or ``max_refill_rounds`` refills were drawn; return
    this process's batch of kept groups (plus masked fillers if short) and the stats of all ranks."""
    G = num_generations
    if local_rows % G:
        raise ValueError(
            f"dynamic sampling needs whole groups on every process: the local generation batch "
            f"({local_rows} completions) is not a multiple of num_generations ({G})"
        )
    quota = local_rows // G
    rounds: list[RoundResult] = []
    kept: list[list[tuple[int, int]]] = [[] for _ in range(num_processes)]  # per rank: (round, local group)
    stats = FillStats()
    while True:
        r = len(rounds)
        result = score_round(r)
        rounds.append(result)
        mixed = mixed_groups(result.correct, G)
        if mixed.numel() != quota * num_processes:
            raise RuntimeError(
                f"round {r}: {mixed.numel()} groups gathered, expected {quota * num_processes}"
            )
        stats.rounds += 1
        stats.groups_drawn += mixed.numel()
        stats.mixed_drawn += int(mixed.sum())
        if r == 0:
            stats.mixed_first_round, stats.groups_first_round = int(mixed.sum()), mixed.numel()
        for rank in range(num_processes):
            for j in range(quota):
                if mixed[rank * quota + j] and len(kept[rank]) < quota:
                    kept[rank].append((r, j))
        if min(map(len, kept)) >= quota or r >= max_refill_rounds:
            break
    stats.kept = sum(map(len, kept))
    stats.filler = quota * num_processes - stats.kept
    stats.kept_groups = [(r, rank * quota + j) for rank in range(num_processes) for r, j in kept[rank]]
    mine = kept[process_index]
    picks = [(r, j, True) for r, j in mine]
    if len(mine) < quota:  # the bound was hit: fill with dropped groups of the first rounds, masked out
        used = set(mine)
        spare = [(r, j) for r in range(len(rounds)) for j in range(quota) if (r, j) not in used]
        picks += [(r, j, False) for r, j in spare[: quota - len(mine)]]
    rows = [(r, j * G + i, live) for r, j, live in picks for i in range(G)]
    return take_rows([x.output for x in rounds], rows, pad_token_id), stats


def take_rows(
    outputs: Sequence[dict[str, Any]], rows: Sequence[tuple[int, int, bool]], pad_token_id: int
) -> dict[str, Any]:
    """One batch dict from rows (round, row, live) of several GRPOTrainer batch dicts; padding
    widened to the widest round; a row that is not live gets a zero completion mask and advantage."""
    keys = set(outputs[0])
    for out in outputs[1:]:
        if set(out) != keys:
            raise RuntimeError(f"rounds returned different batch keys: {sorted(keys ^ set(out))}")
    unknown = keys - set(_LEFT_PADDED) - set(_RIGHT_PADDED) - _PER_ROW - {"num_items_in_batch"}
    if unknown:
        raise ValueError(
            f"dynamic sampling supports text prompts only; the batch also holds {sorted(unknown)}"
        )
    batch: dict[str, Any] = {}
    for key in keys - {"num_items_in_batch"}:
        tensors = [out[key] for out in outputs]
        if key in _PER_ROW or tensors[0].ndim == 1 or tensors[0].shape[1] == 1:
            batch[key] = torch.stack([tensors[r][i] for r, i, _ in rows])
            continue
        width = max(t.shape[1] for t in tensors)
        fill = (
            pad_token_id
            if key in ("prompt_ids", "completion_ids")
            else {**_LEFT_PADDED, **_RIGHT_PADDED}[key]
        )
        left = key in _LEFT_PADDED
        picked = []
        for r, i, _ in rows:
            row = tensors[r][i]
            pad = row.new_full((width - row.shape[0], *row.shape[1:]), fill)
            picked.append(torch.cat([pad, row] if left else [row, pad]))
        batch[key] = torch.stack(picked)
    dead = torch.tensor([not live for _, _, live in rows], device=batch["completion_mask"].device)
    if dead.any():
        batch["completion_mask"] = batch["completion_mask"].masked_fill(dead[:, None], 0)
        batch["advantages"] = batch["advantages"].masked_fill(dead, 0.0)
    return batch
