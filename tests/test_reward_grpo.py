"""The rewards through TRL's own interface: one real GRPOTrainer step (CPU), scored exactly.

The policy is a scripted model (``tests/helpers/scripted_model.py``): each completion is
``\\boxed{7}`` or ``\\boxed{8}``, so the right reward of every completion is known without the
reward under test. A reward that always returns 0, or fails, makes this test fail."""

import json

import pytest

from ssp.reward import get_reward

from .conftest import prompt_dataset, tiny_grpo_args
from .helpers.machine import needs_bwrap
from .helpers.scripted_model import build_scripted_model, expected_answer


@pytest.mark.slow
@needs_bwrap
def test_a_grpo_step_scores_every_completion_like_an_independent_check(tmp_path):
    from trl import GRPOConfig, GRPOTrainer

    model = build_scripted_model(tmp_path / "policy", p=0.5)
    golds = ["7", "8"] * 4
    tests = json.dumps([{"testtype": "stdin", "input": "", "output": "1"}])
    ds = prompt_dataset([f"Problem {i}: what is it?" for i in range(8)], answer=golds, tests=[tests] * 8)
    correctness = get_reward("math_correctness", workers=2)
    rewards = [correctness, get_reward("format"), get_reward("code_tests")]
    args = GRPOConfig(
        **tiny_grpo_args(
            tmp_path / "grpo",
            per_device_train_batch_size=16,
            max_completion_length=4,
            learning_rate=1e-4,
            logging_steps=1,
            reward_weights=[1.0, 0.1, 0.0],
        )
    )
    trainer = GRPOTrainer(model=str(model), reward_funcs=rewards, args=args, train_dataset=ds)
    try:
        trainer.train()
    finally:
        correctness.close()
    completions = [c[-1]["content"] if isinstance(c, list) else c for c in trainer._logs["completion"]]
    prompts = [p[-1]["content"] for p in trainer._logs["prompt"]]
    gold_of = {f"Problem {i}: what is it?": g for i, g in enumerate(golds)}
    expected = [float(expected_answer(c) == gold_of[p]) for p, c in zip(prompts, completions, strict=True)]
    assert len(expected) == 16 and {expected_answer(c) for c in completions} <= {"7", "8"}
    assert 0 < sum(expected) < 16, "the scripted policy should give right and wrong answers"
    assert list(trainer._logs["rewards"]["math_correctness"]) == expected
    assert list(trainer._logs["rewards"]["format"]) == [1.0] * 16  # every completion is one boxed answer
    assert list(trainer._logs["rewards"]["code_tests"]) == [0.0] * 16  # no program in any completion
    logged = {k: v for entry in trainer.state.log_history for k, v in entry.items()}
    assert logged["rewards/math_correctness/mean"] == sum(expected) / 16
    # the reward's own health, logged by TRL through log_metric
    for name in ("math_correctness", "code_tests"):
        assert logged[f"rewards/{name}/timeout_rate"] == 0.0 and logged[f"rewards/{name}/error_rate"] == 0.0
    assert trainer.state.global_step == 1
