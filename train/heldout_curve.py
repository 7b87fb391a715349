"""The held-out curve: Pass@1 of the policy being trained, measured during an RL phase.

Training reward says how the policy does on the prompts it is trained on; it can rise while
held-out accuracy falls (memorising a small RL set, or trading one problem type for another).
``HeldoutCurve`` samples a fixed subset of the held-out problems with the policy itself (transformers
``generate`` on the trainer's model, no engine) at the phase's start and every ``every`` steps,
scores them with the phase's correctness reward, and adds ``heldout/pass@1`` to that step's log
(TRL's metrics: W&B, ``log_history``); the points are kept in ``curve`` for the phase summary and the report.

Each process samples its share of the problems (rows ``rank::world``) and the counts are summed;
DeepSpeed ZeRO-3's parameters are gathered for it as TRL does for its own generation. The global
random state is saved and restored around a measurement, so a phase with the curve trains on
exactly the rollouts of a phase without it.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from ssp.core.corpus import chat_prompt
from ssp.sampling.generation import HFGenerator, SamplingParams
from ssp.sampling.scoring import sample_columns, zero_truncated


class HeldoutCurve(TrainerCallback):
    def __init__(
        self, rows: list[dict[str, Any]], reward, params: SamplingParams, every: int, suffix: str = ""
    ):
        self.rows, self.reward, self.params, self.every, self.suffix = rows, reward, params, every, suffix
        self.trainer = None  # bind() after the trainer exists
        self.curve: list[dict[str, Any]] = []

    def bind(self, trainer) -> HeldoutCurve:
        self.trainer = trainer
        return self

    def on_train_begin(self, args, state, control, **kwargs):
        self._measure(state.global_step)  # the starting point: in ``curve``, not in a log row

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            # TRL averages and clears its metrics at the step's log: the value reaches log_history and W&B
            self.trainer._metrics["train"]["heldout/pass@1"].append(self._measure(state.global_step))

    def _measure(self, step: int) -> float:
        from trl.models import unwrap_model_for_generation

        trainer = self.trainer
        acc = trainer.accelerator
        mine = self.rows[acc.process_index :: acc.num_processes]
        states = (random.getstate(), np.random.get_state(), torch.random.get_rng_state())
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        try:
            with unwrap_model_for_generation(
                trainer.model_wrapped, acc, gather_deepspeed3_params=trainer.args.ds3_gather_for_generation
            ) as model:
                was_training = model.training
                model.eval()
                try:
                    outs = HFGenerator.around(model, trainer.processing_class).generate(
                        [chat_prompt(r["problem"], self.suffix) for r in mine],
                        self.params,
                        desc="held-out curve",
                    )
                finally:
                    model.train(was_training)
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])
            torch.random.set_rng_state(states[2])
            if cuda is not None:
                torch.cuda.set_rng_state_all(cuda)
        flat = [c for o in outs for c in o]
        texts = [c.text for c in flat]
        scores = self.reward(texts, **sample_columns(mine, self.params.n)) if texts else []
        scores = zero_truncated(self.reward, flat, scores)  # as evaluation scores them
        counts = torch.tensor(
            [sum(s == 1.0 for s in scores), len(scores), sum(s is None for s in scores)],
            dtype=torch.float64,
            device=acc.device,
        )
        correct, total, unscored = acc.gather(counts).view(-1, 3).sum(dim=0).tolist()
        point = {"step": step, "pass@1": correct / total, "samples": int(total), "unscored": int(unscored)}
        self.curve.append(point)
        return point["pass@1"]
