"""MaxEnt-Guided Policy Optimization (MGPO): GRPO with a per-problem weight on the advantage.

For a problem q with G sampled completions and binary correctness rewards r_i:

    p_c(q)  = (1/G) sum_i 1[r_i = 1]                          the group's accuracy
    D_ME    = p_c log(p_c / p_0) + (1 - p_c) log((1 - p_c) / (1 - p_0))    KL(Ber(p_c) || Ber(p_0))
    w_ME(q) = exp(-lambda * D_ME)                             in [2^-lambda, 1] for p_0 = 1/2
    A'_i    = w_ME(q) * A_i                                   replaces GRPO's advantage

lambda = 0 is exactly GRPO. The weight scales the *advantage*, not the reward: group
normalisation would cancel a scaled reward.

How it sits on TRL (pinned to 1.16.x, which has no hook for this): ``_calculate_rewards``
returns the rewards of *all* processes (TRL gathers them to normalise per group); this trainer
keeps that tensor, computes p_c per group from the designated correctness reward only (never
from format rewards), and after TRL has computed and sliced the advantages multiplies this
process's slice by the matching slice of the weights (TRL's own slice: process_index x local
batch). Unscorable completions (reward None -> NaN) count as not correct. It works in
evaluation mode too (``num_generations_eval``). TRL logs the advantages before weighting; this
trainer replaces them in its completion log with the weighted ones and logs
``mgpo/weight_mean``, ``mgpo/weight_min``, ``mgpo/frac_pc_0_or_1``, a 5-bin histogram of p_c
(``mgpo/p_c_hist/...``) and ``mgpo/abs_advantage_mean`` after weighting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from trl import GRPOConfig, GRPOTrainer


def max_entropy_weight(p_correct: torch.Tensor, lam: float, p0: float = 0.5) -> torch.Tensor:
    """w = exp(-lam * KL(Bernoulli(p_correct) || Bernoulli(p0))), elementwise, with 0 * log 0 = 0.

    p = 0.25, lam = 1 -> 0.877383;  p = p0 -> 1;  p in {0, 1}, p0 = 0.5 -> 2^-lam."""
    if not 0.0 < p0 < 1.0:
        raise ValueError(f"p0 must be in (0, 1), got {p0}")
    if lam < 0:
        raise ValueError(f"lambda must be >= 0, got {lam}")
    p = p_correct.to(torch.float64)
    kl = torch.xlogy(p, p / p0) + torch.xlogy(1 - p, (1 - p) / (1 - p0))  # xlogy(0, .) = 0
    return torch.exp(-lam * kl).to(p_correct.dtype if p_correct.is_floating_point() else torch.float32)


@dataclass
class MGPOConfig(GRPOConfig):
    """GRPOConfig plus MGPO's three knobs."""

    mgpo_lambda: float = field(
        default=4.0, metadata={"help": "lambda of w = exp(-lambda KL); 0 = plain GRPO."}
    )
    mgpo_p0: float = field(default=0.5, metadata={"help": "Target accuracy p_0 of the max-entropy weight."})
    mgpo_correctness_index: int = field(
        default=0, metadata={"help": "Index in reward_funcs of the binary correctness reward p_c comes from."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.mgpo_lambda < 0:
            raise ValueError(f"mgpo_lambda must be >= 0, got {self.mgpo_lambda}")
        if not 0 < self.mgpo_p0 < 1:
            raise ValueError(f"mgpo_p0 must be in (0, 1), got {self.mgpo_p0}")


HIST_EDGES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def group_weights(
    rewards_per_func: torch.Tensor, correctness_index: int, num_generations: int, lam: float, p0: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(p_c, w) per group, each [B/G], from the all-process rewards [B, n_funcs] (groups are contiguous)."""
    correct = rewards_per_func[:, correctness_index] == 1.0  # NaN (unscorable) is not correct
    p_c = correct.float().view(-1, num_generations).mean(dim=1)
    return p_c, max_entropy_weight(p_c, lam, p0)


class MGPOTrainer(GRPOTrainer):
    """GRPOTrainer whose advantages are scaled per problem by the max-entropy-deviation weight."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not 0 <= self.args.mgpo_correctness_index < len(self.reward_funcs):
            raise ValueError(
                f"mgpo_correctness_index={self.args.mgpo_correctness_index} but there are "
                f"{len(self.reward_funcs)} reward functions"
            )
        self._mgpo_rewards: torch.Tensor | None = None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._mgpo_rewards = rewards_per_func  # [B_all_processes, n_funcs]
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        G = self.num_generations if mode == "train" else self.num_generations_eval
        p_c, w = group_weights(
            self._mgpo_rewards, self.args.mgpo_correctness_index, G, self.args.mgpo_lambda, self.args.mgpo_p0
        )
        weights = w.repeat_interleave(G)  # [B_all_processes], one per completion
        local = len(inputs)
        start = self.accelerator.process_index * local  # TRL's process_slice
        advantages = output["advantages"]
        output["advantages"] = advantages * weights[start : start + local].to(
            advantages.device, advantages.dtype
        )
        self._log_mgpo(mode, p_c, w, weights)
        return output

    def _log_mgpo(self, mode: str, p_c: torch.Tensor, w: torch.Tensor, weights: torch.Tensor) -> None:
        m = self._metrics[mode]
        m["mgpo/weight_mean"].append(w.mean().item())
        m["mgpo/weight_min"].append(w.min().item())
        m["mgpo/frac_pc_0_or_1"].append(((p_c == 0) | (p_c == 1)).float().mean().item())
        for lo, hi in zip(HIST_EDGES, HIST_EDGES[1:], strict=False):
            inside = (p_c >= lo) & ((p_c < hi) if hi < 1 else (p_c <= hi))
            m[f"mgpo/p_c_hist/{lo:.1f}-{hi:.1f}"].append(inside.float().mean().item())
        # TRL appended the all-process advantages *before* weighting to its completion log: replace them.
        logged = self._logs["advantages"]
        n = len(weights)
        if len(logged) >= n:
            before = [logged.pop() for _ in range(n)][::-1]
            after = (torch.tensor(before) * weights.cpu()).tolist()
            logged.extend(after)
            m["mgpo/abs_advantage_mean"].append(sum(abs(a) for a in after) / n)
