"""The rewards through TRL's own interface: one real GRPOTrainer step on the tiny model (CPU)."""

import json
import math

import pytest

from launch.manifest import Manifest
from launch.runner import run_stage
from reward import get_reward

from .conftest import fast_recipe, prompt_dataset, tiny_grpo_args


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    recipe = fast_recipe(tmp_path_factory.mktemp("grpo"))
    run_stage("data", recipe)
    return Manifest(recipe.run_dir).stage("data")["outputs"]


def test_a_grpo_step_scores_with_the_registry_rewards(tiny, tmp_path):
    from trl import GRPOConfig, GRPOTrainer

    rows = [json.loads(line) for line in open(tiny["rl"])][:8]
    tests = json.dumps([{"testtype": "stdin", "input": "", "output": "1"}])
    ds = prompt_dataset(
        [r["problem"] for r in rows], answer=[r["answer"] for r in rows], tests=[tests] * len(rows)
    )
    correctness = get_reward("math_correctness", workers=2)
    rewards = [correctness, get_reward("format"), get_reward("code_tests")]
    args = GRPOConfig(
        **tiny_grpo_args(
            tmp_path / "grpo",
            max_completion_length=16,
            learning_rate=1e-4,
            logging_steps=1,
            reward_weights=[1.0, 0.1, 0.0],
        )
    )
    trainer = GRPOTrainer(model=tiny["base_model"], reward_funcs=rewards, args=args, train_dataset=ds)
    try:
        trainer.train()
    finally:
        correctness.close()
    logged = {k: v for entry in trainer.state.log_history for k, v in entry.items()}
    for name in ("math_correctness", "format", "code_tests"):
        value = logged[f"rewards/{name}/mean"]
        assert math.isfinite(value) and 0.0 <= value <= 1.0, (name, value)
    assert trainer.state.global_step == 1
