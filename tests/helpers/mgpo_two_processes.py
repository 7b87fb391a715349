"""Run under torchrun (2 CPU processes): one MGPO step; each rank dumps what it weighted. Then one
step of dynamic sampling on the same processes; each rank dumps what it kept.

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

from ssp.train.mgpo import MGPOConfig, MGPOTrainer  # noqa: E402
from tests.conftest import prompt_dataset, tiny_grpo_args  # noqa: E402
from tests.test_dynamic_sampling import pattern_reward  # noqa: E402
from tests.test_mgpo import format_reward, parity_reward  # noqa: E402


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
    GRPOTrainer._generate_and_score_completions = grpo
    rank = int(os.environ["RANK"])
    dynamic = _dynamic_step(model, prompts, out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "before": captured["before"],
                "after": output["advantages"].tolist(),
                "rewards_per_func": trainer._mgpo_rewards.tolist(),
                "local": len(batch),
                "dynamic": dynamic,
            }
        )
    )


def _dynamic_step(model, prompts, out):
    """One dynamic-sampling step, 2 processes x 1 group of 4: even-numbered prompts are mixed
    (tests/test_dynamic_sampling.py's positional reward), odd ones all wrong."""
    kinds = ["mixed" if i % 2 == 0 else "flat" for i in range(len(prompts))]
    args = MGPOConfig(
        **tiny_grpo_args(
            out / "dyn",
            per_device_train_batch_size=4,
            mgpo_lambda=4.0,
            dynamic_sampling=True,
            dynamic_sampling_max_refills=6,
        )
    )
    trainer = MGPOTrainer(
        model=model,
        reward_funcs=[pattern_reward],
        args=args,
        train_dataset=prompt_dataset(prompts, kind=kinds),
    )
    trainer.model.train()
    batch = trainer._generate_and_score_completions(next(iter(trainer.get_train_dataloader())))
    tok = trainer.processing_class
    return {
        "kept_groups": trainer.last_fill.kept_groups,
        "filler": trainer.last_fill.filler,
        "prompts": [
            tok.decode(i[m.bool()]) for i, m in zip(batch["prompt_ids"], batch["prompt_mask"], strict=True)
        ],
        "advantages": batch["advantages"].tolist(),
        "kinds": dict(zip(prompts, kinds, strict=True)),
    }


if __name__ == "__main__":
    main()
