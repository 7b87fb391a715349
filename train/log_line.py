"""One readable line per logged step on the console, instead of the trainer's raw dict.

transformers' ``ProgressCallback`` writes every log as a Python dict: about 50 keys per GRPO step
(clip ratios, length minima, the MGPO histogram, cost totals), 30 such dicts in the demo's RL phase.
``StepLine`` keeps its progress bar and writes, in their place, the figures a researcher watches:

    rl math step 12/30: reward 0.41 (math_correctness 0.41) | groups kept 4/6 | mgpo w 0.91 | ...

Nothing is lost: every key stays in ``log_history`` (``trainer_state.json`` of each checkpoint,
the stage's ``log_history.json``), in the stage's W&B run, and ``ssp show-run`` prints them.
The trainer's closing summary (``train_runtime`` ...) becomes one "done" line.
"""

from __future__ import annotations

import logging
from typing import Any

from transformers.trainer_callback import PrinterCallback, ProgressCallback

log = logging.getLogger("ssp")

# (log key, label, format), in the order they are shown; absent keys are left out.
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("loss", "loss", ".4g"),
    ("learning_rate", "lr", ".2g"),
    ("grad_norm", "grad", ".3g"),
    ("mgpo/weight_mean", "mgpo w", ".2f"),
    ("mgpo/frac_pc_0_or_1", "idle groups", ".0%"),
    ("entropy", "entropy", ".3f"),
    ("completions/mean_length", "len", ".0f"),
    ("completions/clipped_ratio", "truncated", ".0%"),
    ("perf/tokens_per_second", "tok/s", ".0f"),
    ("cost/usd", "$", ".4f"),
)


def _fields(logs: dict[str, Any]) -> list[str]:
    return [
        f"{label} {logs[key]:{fmt}}" for key, label, fmt in FIELDS if isinstance(logs.get(key), int | float)
    ]


def step_line(name: str, logs: dict[str, Any], step: int, max_steps: int) -> str:
    """The console line for one log of ``name`` (e.g. ``"sft"``, ``"rl math"``)."""
    if "train_runtime" in logs:
        loss = logs.get("train_loss")
        mean = f", mean loss {loss:.4g}" if isinstance(loss, int | float) else ""
        return f"{name} done: {step} steps in {logs['train_runtime']:.0f} s{mean}"
    parts = []
    if isinstance(logs.get("reward"), int | float):
        per = [
            f"{k[len('rewards/') : -len('/mean')]} {v:.2f}"
            for k, v in logs.items()
            if k.startswith("rewards/") and k.endswith("/mean")
        ]
        parts.append(f"reward {logs['reward']:.2f}" + (f" ({', '.join(per)})" if per else ""))
    if "dynamic_sampling/groups_drawn" in logs:
        parts.append(
            f"groups kept {logs['dynamic_sampling/groups_kept']:.0f}/{logs['dynamic_sampling/groups_drawn']:.0f}"
        )
    parts += _fields(logs)
    if isinstance(logs.get("step_time"), int | float):
        split = [
            f"{part} {logs[f'perf/{part}_seconds']:.1f}"
            for part in ("generation", "training")
            if isinstance(logs.get(f"perf/{part}_seconds"), int | float)
        ]
        parts.append(f"{logs['step_time']:.1f} s" + (f" ({', '.join(split)})" if split else ""))
    held = [f"{k.split('/', 1)[1]} {v:.3f}" for k, v in logs.items() if k.startswith("heldout/")]
    parts += [f"held-out {h}" for h in held]
    return f"{name} step {step}/{max_steps}: " + " | ".join(parts)


class StepLine(ProgressCallback):
    """``ProgressCallback`` (the bar) with ``step_line`` in place of its dict; main process only."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            # log_history's entry is ``logs`` plus what callbacks before this one added (cost)
            entry = state.log_history[-1] if state.log_history else logs
            log.info("%s", step_line(self.name, {**logs, **entry}, state.global_step, state.max_steps))


def use_step_line(trainer, name: str) -> None:
    """Swap the trainer's dict printer (bar or plain) for ``StepLine``, added last so that it sees
    what other callbacks (cost, held-out curve) add to the log."""
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(StepLine(name))
