"""Graders as a choice (reward/graders.py), the answer policy's counts (no answer, truncated) where a
researcher looks, and benchmark files that mix benchmarks."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from ssp.core.errors import DataError
from ssp.evaluation.benchmarks import check_one_benchmark
from ssp.reward import get_reward
from ssp.sampling.generation import Completion
from ssp.sampling.scoring import zero_truncated


@pytest.fixture(scope="module")
def graders():
    rewards = {
        g: get_reward("math_correctness", grader=g, workers=1) for g in ("ssp", "deepscaler", "qwen25math")
    }
    yield rewards
    for r in rewards.values():
        r.close()


# (gold, completion, {grader: score}): each row is a documented difference between protocols
PROTOCOLS = [
    # trailing off with no final answer: only Qwen2.5-Math's last-number fallback grades it
    ("25", "so it is 25 and then I should check", {"ssp": 0.0, "deepscaler": 0.0, "qwen25math": 1.0}),
    # cut inside <think>: a format error for ssp and rllm; Qwen reads the box anyway
    ("3", "<think>maybe \\boxed{3}", {"ssp": 0.0, "deepscaler": 0.0, "qwen25math": 1.0}),
    # the answer after </think> is graded, the reasoning before it is not
    ("3", "<think>\\boxed{3}</think>It is \\boxed{4}.", {"ssp": 0.0, "deepscaler": 0.0, "qwen25math": 0.0}),
    # relative tolerance 1e-4 is Qwen's alone
    ("0.5", "\\boxed{0.50001}", {"ssp": 0.0, "deepscaler": 0.0, "qwen25math": 1.0}),
    # rllm / PRM800K accepts a fraction only in the gold's reduced form
    ("\\frac{1}{2}", "\\boxed{\\frac{2}{4}}", {"ssp": 1.0, "deepscaler": 0.0, "qwen25math": 1.0}),
    # a percentage gold: Qwen also accepts the hundredth
    ("8\\%", "\\boxed{0.08}", {"ssp": 1.0, "deepscaler": 0.0, "qwen25math": 1.0}),
    # all agree on plain cases
    ("\\frac{1}{2}", "The answer is \\boxed{0.5}.", {"ssp": 1.0, "deepscaler": 1.0, "qwen25math": 1.0}),
    ("7", "\\boxed{8}", {"ssp": 0.0, "deepscaler": 0.0, "qwen25math": 0.0}),
]


@pytest.mark.slow
@pytest.mark.parametrize("gold, completion, expected", PROTOCOLS)
def test_each_grader_follows_its_protocol(graders, gold, completion, expected):
    got = {g: r([completion], answer=[gold])[0] for g, r in graders.items()}
    assert got == expected


def test_unknown_grader_is_named():
    with pytest.raises(ValueError, match="unknown grader 'rllm'"):
        get_reward("math_correctness", grader="rllm")


def test_no_answer_is_counted_and_logged(graders):
    """A completion without a final answer scores 0.0 and is counted as such; inside a TRL trainer
    the share is logged every step as rewards/math_correctness/no_answer_rate."""
    logged = {}
    completions = ["\\boxed{1}", "I think it is 1", "<think>it is \\boxed{1}", "Answer: 1"]
    scores = graders["ssp"](completions, answer=["1"] * 4, log_metric=lambda k, v: logged.setdefault(k, v))
    assert scores == [1.0, 0.0, 0.0, 1.0]
    assert graders["ssp"].last.missing == ["", "no_answer", "unclosed_think", ""]
    assert logged["rewards/math_correctness/no_answer_rate"] == 0.5


def test_truncated_completions_score_zero_in_evaluation(graders):
    flat = [Completion("\\boxed{1}", 9, "length"), Completion("\\boxed{1}", 3, "stop")]
    for name, keeps in (("ssp", False), ("deepscaler", False), ("qwen25math", True)):
        reward = graders[name]
        scores = zero_truncated(reward, flat, reward([c.text for c in flat], answer=["1", "1"]))
        assert scores == ([1.0, 1.0] if keeps else [0.0, 1.0]), name


def test_truncated_completions_score_zero_in_rl(graders):
    """MGPOTrainer._zero_truncated on the gathered reward matrix: only the columns of rewards that do
    not grade unfinished work, only truncated rows (last token not EOS/pad), NaN kept."""
    from ssp.train.mgpo import MGPOTrainer

    fmt = get_reward("format")
    fake = SimpleNamespace(
        reward_funcs=[graders["ssp"], fmt],
        eos_token_ids=[2],
        _tokenizer=SimpleNamespace(pad_token_id=0),
        accelerator=SimpleNamespace(gather=lambda t: t),
        model=SimpleNamespace(training=True),
        _metrics={"train": defaultdict(list)},
    )
    rewards = torch.tensor([[1.0, 1.0], [1.0, 1.0], [float("nan"), 0.0], [0.0, 1.0]])
    ids = [[5, 2], [5, 6], [7, 8], [9, 9]]  # ends: EOS, cut, cut, cut
    out = MGPOTrainer._zero_truncated(fake, rewards, ids)
    assert out[:, 0].tolist()[:2] == [1.0, 0.0] and torch.isnan(out[2, 0]) and out[3, 0] == 0.0
    assert out[:, 1].tolist() == [1.0, 1.0, 0.0, 1.0]  # format does not say: untouched
    assert fake._metrics["train"]["rewards/math_correctness/truncated_zeroed"] == [0.25]


def test_a_file_mixing_benchmarks_is_refused():
    rows = [
        {"problem": "p", "answer": "1", "data_source": s}
        for s in ["aime"] * 30 + ["hmmt"] * 30 + ["math"] * 530
    ]
    with pytest.raises(
        DataError,
        match=r"mixed.jsonl: benchmark math500: its rows name 3 sources in column "
        r"'data_source' \('math': 530, 'aime': 30, 'hmmt': 30\)",
    ):
        check_one_benchmark(rows, "math500", "mixed.jsonl")
    check_one_benchmark([{"problem": "p", "answer": "1", "source": "math"}] * 5, "math500", "one.jsonl")


def test_graders_side_by_side_reuse_a_reward_only_for_the_options_it_was_built_with():
    """ssp eval --graders: one benchmark reads its gold from `answer`, the next from `gold`; a grader
    built for the first must not grade the second (its cache is keyed on grader and options), and
    the benchmark's own grader reuses the scores already computed."""
    from ssp.evaluation.evaluate import grade_with_each

    flat = [Completion("\\boxed{1}", 3, "stop"), Completion("\\boxed{2}", 3, "stop")]
    cache: dict = {}
    try:
        first = grade_with_each(
            ["ssp", "qwen25math"], flat, [{"problem": "p", "answer": "1"}], 2, {}, cache, [1.0, 0.0]
        )
        rows = [{"problem": "p", "answer": "x", "gold": "2"}]
        second = grade_with_each(
            ["ssp", "qwen25math"], flat, rows, 2, {"answer_column": "gold"}, cache, [0.0, 1.0]
        )
    finally:
        for r in cache.values():
            r.close()
    assert first["pass@1"] == {"ssp": 0.5, "qwen25math": 0.5} and first["disagreements"] == {
        "ssp vs qwen25math": 0
    }
    assert second["pass@1"] == {"ssp": 0.5, "qwen25math": 0.5} and second["disagreements"] == {
        "ssp vs qwen25math": 0
    }
    assert len(cache) == 2  # one qwen25math reward per set of options; ssp's scores were reused
