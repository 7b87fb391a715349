"""MGPO: the weight function, lambda = 0 is GRPO, exact scaling, and two processes (gloo)."""

import json
import math
import subprocess
import sys

import pytest
import torch

from ssp.train.mgpo import group_weights, max_entropy_weight

from .conftest import ROOT, prompt_dataset, tiny_grpo_args


@pytest.mark.parametrize(
    "p, lam, expected",
    [
        (0.25, 1.0, 0.877383),
        (0.75, 1.0, 0.877383),
        (0.5, 1.0, 1.0),
        (0.5, 7.0, 1.0),
        (0.0, 1.0, 0.5),
        (1.0, 1.0, 0.5),
        (0.0, 3.0, 2**-3),
        (1.0, 4.0, 2**-4),
        (0.3, 0.0, 1.0),
    ],
)
def test_weight_against_hand_values(p, lam, expected):
    assert max_entropy_weight(torch.tensor([p], dtype=torch.float64), lam).item() == pytest.approx(
        expected, abs=1e-6
    )


def test_weight_is_the_kl_formula_and_bounded():
    p = torch.linspace(0, 1, 101, dtype=torch.float64)
    w = max_entropy_weight(p, 2.0)
    entropy = -(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p))
    torch.testing.assert_close(w, torch.exp(-2.0 * (math.log(2) - entropy)))  # D_ME = ln 2 - H(p)
    assert (w >= 2**-2 - 1e-12).all() and (w <= 1).all()


def test_group_weights_use_only_the_correctness_column():
    # 2 groups of 4; column 0 correctness, column 1 a format bonus that must not matter
    rewards = torch.tensor([[1, 1], [0, 1], [0, 1], [0, 1], [1, 0], [1, 0], [float("nan"), 1], [0, 1]])
    p_c, w = group_weights(rewards, correctness_index=0, num_generations=4, lam=1.0, p0=0.5)
    assert p_c.tolist() == [0.25, 0.5]  # NaN (unscorable) counts as not correct
    assert w[0].item() == pytest.approx(0.877383, abs=1e-6) and w[1].item() == pytest.approx(1.0)


def parity_reward(completions, **kwargs):
    """A deterministic reward that mixes within groups: 1 if the completion has an even length."""
    return [float(len(c[-1]["content"] if isinstance(c, list) else c) % 2 == 0) for c in completions]


def format_reward(completions, **kwargs):
    return [1.0] * len(completions)


@pytest.fixture(scope="module")
def tiny_model(tiny_rl_data):
    model, rows = tiny_rl_data
    return model, rows[:4]


def _one_step(trainer_cls, config_cls, model, rows, out, **extra):
    ds = prompt_dataset([r["problem"] for r in rows])
    args = config_cls(**tiny_grpo_args(out, learning_rate=1e-3, logging_steps=1, data_seed=0, **extra))
    trainer = trainer_cls(
        model=model, reward_funcs=[parity_reward, format_reward], args=args, train_dataset=ds
    )
    trainer.train()
    params = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    loss = next(h["loss"] for h in trainer.state.log_history if "loss" in h)
    return (
        trainer,
        list(trainer._logs["advantages"]),
        list(trainer._logs["rewards"]["parity_reward"]),
        loss,
        params,
    )


@pytest.mark.slow
def test_lambda_zero_is_exactly_grpo_and_lambda_scales_advantages(tiny_model, tmp_path):
    from trl import GRPOConfig, GRPOTrainer

    from ssp.train.mgpo import MGPOConfig, MGPOTrainer

    model, rows = tiny_model
    _, adv_grpo, rewards, loss_grpo, params_grpo = _one_step(
        GRPOTrainer, GRPOConfig, model, rows, tmp_path / "g"
    )
    assert 0 < sum(rewards) < len(rewards), "the parity reward should mix within the batch"
    mg, adv0, _, loss0, params0 = _one_step(
        MGPOTrainer, MGPOConfig, model, rows, tmp_path / "m0", mgpo_lambda=0.0
    )
    assert adv0 == adv_grpo and loss0 == loss_grpo
    assert torch.equal(params0, params_grpo), "lambda = 0 must train exactly like GRPO"

    mg4, adv4, rewards4, _, _ = _one_step(
        MGPOTrainer, MGPOConfig, model, rows, tmp_path / "m4", mgpo_lambda=4.0
    )
    assert rewards4 == rewards, "same seed, same completions"
    p_c = torch.tensor(rewards).view(-1, 4).eq(1.0).float().mean(1)
    expected = torch.tensor(adv_grpo) * max_entropy_weight(p_c, 4.0).repeat_interleave(4)
    torch.testing.assert_close(torch.tensor(adv4), expected)  # the logged advantages are the weighted ones
    logged = {k: v for h in mg4.state.log_history for k, v in h.items()}
    assert logged["mgpo/weight_min"] >= 2**-4 - 1e-9 and logged["mgpo/weight_mean"] <= 1.0
    assert {"mgpo/frac_pc_0_or_1", "mgpo/p_c_hist/0.4-0.6", "mgpo/abs_advantage_mean"} <= set(logged)


@pytest.mark.slow
def test_two_processes_weight_like_one(tiny_model, tmp_path):
    """torchrun, 2 CPU processes (gloo), one prompt group split across them: p_c must be computed
    over the gathered group and each process must weight exactly its own slice."""
    model, rows = tiny_model
    out = tmp_path / "dist"
    script = ROOT / "tests" / "helpers" / "mgpo_two_processes.py"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(script),
            model,
            json.dumps([r["problem"] for r in rows]),
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    all_rewards = torch.tensor(ranks[0]["rewards_per_func"])
    assert torch.equal(all_rewards, torch.tensor(ranks[1]["rewards_per_func"])), "both ranks see all rewards"
    _, w = group_weights(all_rewards, 0, 4, 4.0, 0.5)
    weights = w.repeat_interleave(4)
    before = torch.tensor(ranks[0]["before"] + ranks[1]["before"])
    after = torch.tensor(ranks[0]["after"] + ranks[1]["after"])
    torch.testing.assert_close(after, before * weights)
    assert ranks[0]["local"] == 2 and ranks[1]["local"] == 2  # a group of 4 straddles the two ranks
    # dynamic sampling on the same two processes: one group each, the same decisions on both ranks,
    # only mixed prompts trained on, with GRPO's advantages of the pattern times MGPO's weight
    dyn = [r["dynamic"] for r in ranks]
    assert dyn[0]["kept_groups"] == dyn[1]["kept_groups"] and len(dyn[0]["kept_groups"]) == 2
    assert dyn[0]["filler"] == dyn[1]["filler"] == 0
    for d in dyn:
        kept = {p for p, k in d["kinds"].items() if k == "mixed" and any(p in t for t in d["prompts"])}
        assert len(kept) == 1 and all(next(iter(kept)) in t for t in d["prompts"]), d["prompts"]
        reward = torch.tensor([1.0, 0.0, 0.0, 0.0])
        grpo = (reward - reward.mean()) / (reward.std() + 1e-4)
        torch.testing.assert_close(
            torch.tensor(d["advantages"]), grpo * max_entropy_weight(torch.tensor([0.25]), 4.0)
        )


def test_evaluation_mode_uses_num_generations_eval(tiny_model, tmp_path):
    from ssp.train.mgpo import MGPOConfig, MGPOTrainer

    model, rows = tiny_model
    ds = prompt_dataset([r["problem"] for r in rows])
    args = MGPOConfig(
        **tiny_grpo_args(
            tmp_path, max_steps=-1, per_device_eval_batch_size=8, num_generations_eval=2, mgpo_lambda=4.0
        )
    )
    trainer = MGPOTrainer(
        model=model, reward_funcs=[parity_reward, format_reward], args=args, train_dataset=ds, eval_dataset=ds
    )
    metrics = trainer.evaluate()
    # groups of 2: p_c in {0, 0.5, 1}, so the weight is 2^-4 or 1 and its minimum is one of them
    assert metrics["eval_mgpo/weight_min"] in (pytest.approx(2**-4), pytest.approx(1.0))
    assert 2**-4 - 1e-9 <= metrics["eval_mgpo/weight_mean"] <= 1.0
