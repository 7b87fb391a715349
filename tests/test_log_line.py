"""The console's line per logged step (train/log_line.py), on a real GRPO log entry of the demo."""

import json
from pathlib import Path

from ssp.train.log_line import step_line

# One entry of log_history from the demo's RL phase (runs/tiny/rl/0-math, checkpoint-30, 2026-12-03).
ENTRY = json.loads((Path(__file__).parent / "fixtures" / "logs" / "grpo_log_entry.json").read_text())


def test_rl_step_is_one_line_of_the_figures_a_researcher_watches():
    line = step_line("rl math", ENTRY, 29, 30)
    assert line == (
        "rl math step 29/30: reward 0.41 (math_correctness 0.41) | groups kept 4/4 | loss -0.03554"
        " | lr 6.7e-06 | grad 0.489 | mgpo w 0.91 | idle groups 0% | entropy 0.240 | len 41"
        " | truncated 0% | tok/s 2579 | $ 0.0019 | 1.0 s (generation 0.4, training 0.5)"
    )
    assert "\n" not in line and len(line) < 300  # TRL's dict of this entry: ~2,000 characters


def test_heldout_point_and_closing_summary():
    assert step_line("rl math", {"reward": 0.5, "heldout/pass@1": 0.1875}, 10, 30).endswith(
        "| held-out pass@1 0.188"
    )
    done = {"train_runtime": 61.7, "train_loss": 0.8123, "train_samples_per_second": 3.2}
    assert step_line("sft", done, 200, 200) == "sft done: 200 steps in 62 s, mean loss 0.8123"
