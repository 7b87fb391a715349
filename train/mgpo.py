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

from ssp.train.dynamic_sampling import RoundResult, fill_batch, refill_indices
from ssp.train.rollout_mismatch import engine_logprobs, mismatch_stats, reduce_stats, sync_verdict
from ssp.train.telemetry import StepTimeSplit


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
    dynamic_sampling: bool = field(
        default=False,
        metadata={"help": "Drop groups whose correctness rewards are all equal; refill with fresh prompts."},
    )
    dynamic_sampling_max_refills: int = field(
        default=4, metadata={"help": "Extra generation rounds per step at most (each one generation batch)."}
    )
    weight_sync_check_every: int = field(
        default=0,
        metadata={
            "help": "vLLM rollouts: check every N steps (and at step 0) that the engine holds the "
            "trainer's weights; 0 = never."
        },
    )
    weight_sync_tolerance: float = field(
        default=0.1,
        metadata={"help": "Largest mean |engine - trainer| log-prob per token the check accepts."},
    )

    def __post_init__(self):
        super().__post_init__()
        if self.mgpo_lambda < 0:
            raise ValueError(f"mgpo_lambda must be >= 0, got {self.mgpo_lambda}")
        if not 0 < self.mgpo_p0 < 1:
            raise ValueError(f"mgpo_p0 must be in (0, 1), got {self.mgpo_p0}")
        if self.dynamic_sampling_max_refills < 0:
            raise ValueError(
                f"dynamic_sampling_max_refills must be >= 0, got {self.dynamic_sampling_max_refills}"
            )
        if self.dynamic_sampling and self.scale_rewards == "batch":
            # a kept group's advantages come from its own round; batch scaling would tie them to the round's others
            raise ValueError("dynamic_sampling needs scale_rewards 'group' or 'none', not 'batch'")
        if self.dynamic_sampling and self.num_iterations != 1:
            raise ValueError("dynamic_sampling works with num_iterations = 1 (one update per rollout batch)")


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
        self.sync_checks: list[dict] = []  # the weight-sync checks run, in order
        self._last_sync_check: int | None = None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        rewards_per_func = self._zero_truncated(rewards_per_func, completion_ids_list)
        self._mgpo_rewards = rewards_per_func  # [B_all_processes, n_funcs]
        return rewards_per_func

    def _zero_truncated(self, rewards: torch.Tensor, completion_ids_list) -> torch.Tensor:
        """A completion cut at ``max_completion_length`` is unfinished work: rewards that do not grade
        it (``grades_truncated = False``, the ssp and deepscaler math graders) score it 0, as
        ``sampling.scoring.zero_truncated`` does in evaluation. Logged per step as
        ``rewards/<name>/truncated_zeroed`` (the share of completions whose reward this changed);
        TRL's ``completions/clipped_ratio`` is the share truncated."""
        columns = [
            i for i, f in enumerate(self.reward_funcs) if getattr(f, "grades_truncated", True) is False
        ]
        if not columns:
            return rewards
        eos_and_pad = {*self.eos_token_ids, self._tokenizer.pad_token_id}
        local = torch.tensor(
            [not ids or ids[-1] not in eos_and_pad for ids in completion_ids_list], device=rewards.device
        )
        truncated = self.accelerator.gather(local)
        mode = "train" if self.model.training else "eval"
        for i in columns:
            hit = truncated & ~torch.isnan(rewards[:, i]) & (rewards[:, i] != 0)
            rewards[hit, i] = 0.0
            name = getattr(self.reward_funcs[i], "__name__", f"reward_{i}")
            self._metrics[mode][f"rewards/{name}/truncated_zeroed"].append(hit.float().mean().item())
        return rewards

    def _generate_and_score_completions(self, inputs):
        mode = "train" if self.model.training else "eval"
        if mode == "train" and self.args.dynamic_sampling:
            output = self._dynamic_batch(inputs)
        else:
            output, p_c, w, advantages = self._weighted_round(inputs, mode)
            self._log_mgpo(mode, p_c, w, advantages)
        if mode == "train":
            self._maybe_check_sync()
        return output

    def _weighted_round(self, inputs, mode: str):
        """TRL's generation and scoring of ``inputs``, then the advantages scaled by the MGPO weight.
        Returns this process's batch, and p_c, w (per group) and the weighted advantages (per
        completion, None if TRL's completion log did not hold them) of all processes."""
        output = super()._generate_and_score_completions(inputs)
        if mode == "train" and output.get("sampling_per_token_logps") is not None:
            self._log_mismatch(output)
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
        # TRL appended the all-process advantages *before* weighting to its completion log: replace them.
        logged = self._logs["advantages"]
        n = len(weights)
        after = None
        if len(logged) >= n:
            before = [logged.pop() for _ in range(n)][::-1]
            after = torch.tensor(before) * weights.cpu()
            logged.extend(after.tolist())
        return output, p_c, w, after

    def _dynamic_batch(self, inputs):
        """Dynamic sampling (train/dynamic_sampling.py): rounds of fresh prompts until every process
        holds only groups with mixed correctness, or the refill bound."""
        G, local = self.num_generations, len(inputs)
        prompts_per_round = local * self.accelerator.num_processes // G
        rounds: list[tuple] = []  # (p_c, w, advantages) of all processes, per round

        def score_round(r: int) -> RoundResult:
            if r == 0:
                output, p_c, w, advantages = self._weighted_round(inputs, "train")
            else:
                output, p_c, w, advantages = self._refill_round(r, prompts_per_round, local)
            rounds.append((p_c, w, advantages))
            correct = self._mgpo_rewards[:, self.args.mgpo_correctness_index] == 1.0
            return RoundResult(output, correct)

        batch, stats = fill_batch(
            score_round,
            num_generations=G,
            local_rows=local,
            process_index=self.accelerator.process_index,
            num_processes=self.accelerator.num_processes,
            max_refill_rounds=self.args.dynamic_sampling_max_refills,
            pad_token_id=self._tokenizer.pad_token_id,
        )
        self.last_fill = stats  # what the last step drew and kept (tests, debugging)
        loss_mask = batch["completion_mask"] * batch.get("tool_mask", 1)
        batch["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()
        kept = stats.kept_groups
        if kept:
            have_adv = all(rounds[r][2] is not None for r, _ in kept)
            self._log_mgpo(
                "train",
                torch.stack([rounds[r][0][g] for r, g in kept]),
                torch.stack([rounds[r][1][g] for r, g in kept]),
                torch.cat([rounds[r][2][g * G : (g + 1) * G] for r, g in kept]) if have_adv else None,
            )
        m = self._metrics["train"]
        m["dynamic_sampling/rounds"].append(stats.rounds)
        m["dynamic_sampling/groups_drawn"].append(stats.groups_drawn)
        m["dynamic_sampling/groups_kept"].append(stats.kept)
        m["dynamic_sampling/filler_groups"].append(stats.filler)
        m["dynamic_sampling/frac_mixed_first_round"].append(
            stats.mixed_first_round / stats.groups_first_round
        )
        m["dynamic_sampling/frac_mixed_drawn"].append(stats.mixed_drawn / stats.groups_drawn)
        return batch

    def _refill_round(self, round_index: int, prompts: int, local: int):
        """Refill round ``round_index`` (>= 1) of this step: fresh prompts, each repeated G times, this
        process's slice generated and scored like the dataloader's batch (``_weighted_round``)."""
        step_rounds = max(1, self.args.dynamic_sampling_max_refills)
        start = (self.state.global_step * step_rounds + round_index - 1) * prompts
        indices = refill_indices(len(self.train_dataset), self.args.seed, start, prompts)
        rows = [self.train_dataset[i] for i in indices for _ in range(self.num_generations)]
        first = self.accelerator.process_index * local
        return self._weighted_round(rows[first : first + local], "train")

    def _log_mismatch(self, output) -> None:
        """The raw trainer/engine importance ratio of this round's tokens (train/rollout_mismatch.py)."""
        trainer_logps = output.get("old_per_token_logps")
        if trainer_logps is None:  # TRL computes them only for its correction: score the tokens here
            trainer_logps = self._trainer_logps(
                torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1),
                torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1),
                output["completion_ids"].size(1),
            )
        mask = output["completion_mask"] * output.get("tool_mask", 1)
        args = self.args
        local = mismatch_stats(
            trainer_logps,
            output["sampling_per_token_logps"],
            mask,
            sequence_level=args.vllm_importance_sampling_mode.startswith("sequence"),
            clip_min=args.vllm_importance_sampling_clip_min,
            clip_max=args.vllm_importance_sampling_clip_max,
        )
        gathered = self.accelerator.gather(local.to(self.accelerator.device)).cpu()
        for key, value in reduce_stats(gathered).items():
            self._metrics["train"][key].append(value)

    def _trainer_logps(self, input_ids, attention_mask, logits_to_keep) -> torch.Tensor:
        with torch.no_grad():
            logps, _, _ = self._get_per_token_logps_and_entropies(
                self.model,
                input_ids,
                attention_mask,
                logits_to_keep,
                batch_size=self.args.per_device_train_batch_size,
            )
        return logps

    def _maybe_check_sync(self) -> None:
        """The weight-sync check at step 0 and every ``weight_sync_check_every`` steps (vLLM rollouts)."""
        every, step = self.args.weight_sync_check_every, self.state.global_step
        if not (self.use_vllm and every) or step % every or step == self._last_sync_check:
            return
        self._last_sync_check = step
        prompt_ids = self._tokenize_prompts([self.train_dataset[0]["prompt"]])[0][0]
        n, max_tokens = 4, min(32, self.args.max_completion_length)
        completions, engine = engine_logprobs(self.vllm_generation, prompt_ids, n, max_tokens)
        width = max(map(len, completions))
        device = self.accelerator.device
        pad = self._tokenizer.pad_token_id
        ids = torch.tensor([prompt_ids + c + [pad] * (width - len(c)) for c in completions], device=device)
        mask = torch.tensor([[1] * (len(prompt_ids) + len(c)) + [0] * (width - len(c)) for c in completions])
        trainer = self._trainer_logps(ids, mask.to(device), width).cpu()
        nan = float("nan")
        engine_t = torch.tensor(
            [[nan if x is None else x for x in e] + [nan] * (width - len(e)) for e in engine]
        )
        diff = (trainer.float() - engine_t)[~torch.isnan(engine_t)].abs()
        # every process decides on the same totals, so all stop together
        total, tokens = (
            self.accelerator.gather(
                torch.tensor([diff.sum().item(), float(diff.numel())], dtype=torch.float64, device=device)
            )
            .view(-1, 2)
            .sum(dim=0)
            .tolist()
        )
        record = sync_verdict(
            step, total / tokens if tokens else 0.0, int(tokens), self.args.weight_sync_tolerance, "rl"
        )
        self.sync_checks.append(record)
        self._metrics["train"]["mismatch/sync_check_logp_diff"].append(record["logp_abs_diff_mean"])

    def _log_mgpo(
        self, mode: str, p_c: torch.Tensor, w: torch.Tensor, advantages: torch.Tensor | None
    ) -> None:
        """MGPO's metrics over the groups trained on (p_c, w per group; weighted advantages per completion)."""
        m = self._metrics[mode]
        m["mgpo/weight_mean"].append(w.mean().item())
        m["mgpo/weight_min"].append(w.min().item())
        m["mgpo/frac_pc_0_or_1"].append(((p_c == 0) | (p_c == 1)).float().mean().item())
        for lo, hi in zip(HIST_EDGES, HIST_EDGES[1:], strict=False):
            inside = (p_c >= lo) & ((p_c < hi) if hi < 1 else (p_c <= hi))
            m[f"mgpo/p_c_hist/{lo:.1f}-{hi:.1f}"].append(inside.float().mean().item())
        if advantages is not None:
            m["mgpo/abs_advantage_mean"].append(advantages.abs().mean().item())


class TimedMGPOTrainer(StepTimeSplit, MGPOTrainer):
    """MGPOTrainer with the step-time split (generation, refills, scoring, training) logged each step
    (train/telemetry.py): what the RL stage runs."""
