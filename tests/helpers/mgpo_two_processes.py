"""Run under torchrun (2 CPU processes): one MGPO step; each rank dumps what it weighted.

Used by tests/test_mgpo.py::test_two_processes_weight_like_one. Arguments: MODEL_DIR
PROMPTS_JSON OUT_DIR. The trainer is instrumented only to record the all-process rewards and
this rank's advantages before and after MGPO's weighting.
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from trl import GRPOTrainer  # noqa: E402

from tests.conftest import prompt_dataset, tiny_grpo_args  # noqa: E402
from tests.test_mgpo import format_reward, parity_reward  # noqa: E402
from train.mgpo import MGPOConfig, MGPOTrainer  # noqa: E402


def main() -> None:
    model, prompts, out = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
    ds = prompt_dataset(prompts)
    args = MGPOConfig(**tiny_grpo_args(out / "run", per_device_train_batch_size=2, mgpo_lambda=4.0))
    trainer = MGPOTrainer(
        model=model, reward_funcs=[parity_reward, format_reward], args=args, train_dataset=ds
    )
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.train()
    # TRL's own code path: super() computes and slices advantages, MGPO weights this rank's slice.
    grpo = GRPOTrainer._generate_and_score_completions
    captured = {}

    def spy(self, inputs):
        output = grpo(self, inputs)
        captured["before"] = output["advantages"].tolist()
        return output

    GRPOTrainer._generate_and_score_completions = spy
    output = trainer._generate_and_score_completions(batch)
    rank = int(os.environ["RANK"])
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "before": captured["before"],
                "after": output["advantages"].tolist(),
                "rewards_per_func": trainer._mgpo_rewards.tolist(),
                "local": len(batch),
            }
        )
    )


if __name__ == "__main__":
    main()
