"""What the trainers report besides their loss: live cost, throughput, RL's step-time split, and the
``cost.max_usd`` budget stop.

``CostCallback`` (SFT and RL) adds to every log: ``cost/gpu_hours`` (or ``cost/cpu_core_hours``),
``cost/usd``, their pipeline totals, and ``perf/tokens_per_second`` (from TRL's cumulative
``num_tokens``: prompt and completion tokens through the model, all processes). They go to the
stage's W&B run under these exact names (transformers' WandbCallback would prefix ``train/``)
and into ``log_history``. After each optimizer step it checks the budget; the processes agree
through one all-reduce, and on crossing the step is saved as a checkpoint and training stops.

``StepTimeSplit`` (RL) splits each GRPO step's ``step_time`` into ``perf/generation_seconds``
(rollouts), ``perf/scoring_seconds`` (reward functions), ``perf/refill_seconds`` (dynamic sampling's
extra rounds, whole: their rollouts, rewards and log-probabilities) and ``perf/training_seconds``
(the rest: log-probabilities, loss, backward, optimizer).
"""

from __future__ import annotations

import time

import torch
from transformers import TrainerCallback

from ssp.core.context import StageContext


class CostCallback(TrainerCallback):
    def __init__(self, ctx: StageContext):
        self.ctx = ctx
        self.stopped_at: int | None = None  # the step at which the budget stopped training
        self._last: tuple[float, float] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._last = (time.monotonic(), float(state.num_input_tokens_seen or 0))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or self.ctx.cost is None:
            return
        metrics = self.ctx.cost.metrics()
        tokens = (logs or {}).get("num_tokens")
        now = time.monotonic()
        if tokens is not None and self._last is not None and now > self._last[0]:
            metrics["perf/tokens_per_second"] = (tokens - self._last[1]) / (now - self._last[0])
            self._last = (now, float(tokens))
        if state.log_history:
            state.log_history[-1].update(metrics)
        if self.ctx.tracker is not None:
            self.ctx.tracker.log(metrics, "train/global_step", state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        cost = self.ctx.cost
        if cost is None or cost.cfg.max_usd is None:
            return
        over = cost.over_budget()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([float(over)], device="cuda" if torch.cuda.is_available() else "cpu")
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            over = bool(flag.item())
        if over:
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step

    def raise_if_stopped(self, where: str) -> None:
        """After ``trainer.train()``: the budget message, naming the checkpoint that was saved."""
        if self.stopped_at is not None:
            # every rank stops here, also one whose own meter is a hair under the budget
            self.ctx.stop_for_budget(f"checkpoint-{self.stopped_at} is saved in {where}")


class StepTimeSplit:
    """Mixin for TRL's GRPOTrainer (before it in the bases): times rollouts and rewards per step."""

    PARTS = ("generation", "scoring", "refills")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._split = dict.fromkeys(self.PARTS, 0.0)
        self._inside_refill = False

    def _timed(self, part: str, fn, *args, **kwargs):
        if self._inside_refill:  # a refill round is timed as a whole
            return fn(*args, **kwargs)
        self._inside_refill = part == "refills"
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self._split[part] += time.perf_counter() - start
            self._inside_refill = False

    def _generate(self, *args, **kwargs):
        return self._timed("generation", super()._generate, *args, **kwargs)

    def _calculate_rewards(self, *args, **kwargs):
        return self._timed("scoring", super()._calculate_rewards, *args, **kwargs)

    def _refill_round(self, *args, **kwargs):
        return self._timed("refills", super()._refill_round, *args, **kwargs)

    def training_step(self, *args, **kwargs):
        step_times = self._metrics["train"]["step_time"]
        before = len(step_times)
        out = super().training_step(*args, **kwargs)
        if len(step_times) > before:  # an optimizer step ended: TRL appended its step_time
            m, split = self._metrics["train"], self._split
            for part in self.PARTS:
                m[f"perf/{part.removesuffix('s')}_seconds"].append(split[part])
            m["perf/training_seconds"].append(max(0.0, step_times[-1] - sum(split.values())))
            self._split = dict.fromkeys(self.PARTS, 0.0)
        return out
