"""Teacher sampling on a scripted model (tests/helpers/scripted_model.py: a real Qwen2 folder that
answers \\boxed{7} with probability p, else \\boxed{8}), scored by the real math_correctness
reward. Correct counts are recounted here from the texts, not taken from the reward."""

from __future__ import annotations

import pytest

from ssp.core.corpus import iter_jsonl
from ssp.data_pipeline.diversity import correct_pool, pick
from ssp.data_pipeline.teacher import sample_shards, verification_counts
from ssp.reward.config import make_reward
from ssp.sampling.generation import HFGenerator, SamplingParams

from .helpers.scripted_model import build_scripted_model

ROWS = [
    {"id": f"p{i}", "domain": "algebra" if i % 2 else "geometry", "problem": f"Problem {i}.", "answer": "7"}
    for i in range(10)
]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return build_scripted_model(tmp_path_factory.mktemp("teacher") / "m", p=0.6)


@pytest.fixture(scope="module")
def reward():
    r = make_reward("math_correctness", {}, "test")
    yield r
    r.close()


class Interrupting:
    """The real generator, interrupted (as by a kill) on its ``stop_at``-th call."""

    calls = 0

    def __init__(self, model, stop_at):
        self.inner, self.stop_at = HFGenerator(model, batch_size=64), stop_at

    def generate(self, *args, **kwargs):
        Interrupting.calls += 1
        if Interrupting.calls == self.stop_at:
            raise KeyboardInterrupt
        return self.inner.generate(*args, **kwargs)

    def close(self):
        self.inner.close()


@pytest.mark.slow
def test_sharded_sampling_resumes_after_a_kill_and_counts_verification(tmp_path, teacher, reward):
    params = SamplingParams(n=6, temperature=1.0, top_p=1.0, max_new_tokens=12, seed=3)
    folder = tmp_path / "teacher"
    Interrupting.calls = 0
    with pytest.raises(KeyboardInterrupt):
        sample_shards(ROWS, folder, lambda: Interrupting(teacher, stop_at=3), reward, params, 4, "scripted")
    done = sorted(p.name for p in folder.glob("shard-*.jsonl"))
    assert done == ["shard-00000.jsonl", "shard-00001.jsonl"] and not list(folder.glob(".*tmp*"))
    before = (folder / "shard-00000.jsonl").read_bytes()
    paths = sample_shards(
        ROWS, folder, lambda: Interrupting(teacher, stop_at=0), reward, params, 4, "scripted"
    )
    assert Interrupting.calls == 4  # 2 shards, the interrupted call, then only the missing shard
    assert (folder / "shard-00000.jsonl").read_bytes() == before

    rows = [r for p in paths for r in iter_jsonl(p)]
    assert [r["id"] for r in rows] == [r["id"] for r in ROWS]
    counts = verification_counts(paths)
    for domain in ("algebra", "geometry"):
        samples = [s for r in rows if r["domain"] == domain for s in r["samples"]]
        sevens = sum(s["text"].strip() == "\\boxed{7}" for s in samples)  # independent of the reward
        assert counts[domain]["samples"] == len(samples) == 30
        assert counts[domain]["correct"] == sevens and 0 < sevens < 30
        assert counts[domain]["pass_rate"] == round(sevens / 30, 4)
    for r in rows:  # what selection keeps from these pools: the one correct text, once
        kept = pick(correct_pool(r["samples"]), 3)
        assert [s["text"].strip() for s in kept] == (
            ["\\boxed{7}"] if any(s["score"] == 1.0 for s in r["samples"]) else []
        )

    # another plan (other sampling settings) never reuses these shards
    other = SamplingParams(n=2, temperature=1.0, top_p=1.0, max_new_tokens=12, seed=3)
    paths = sample_shards(ROWS, folder, lambda: HFGenerator(teacher), reward, other, 4, "scripted")
    assert all(len(r["samples"]) == 2 for p in paths for r in iter_jsonl(p))


class Counting(HFGenerator):
    """The real generator, counting its generate calls."""

    calls = 0

    def generate(self, *args, **kwargs):
        Counting.calls += 1
        return super().generate(*args, **kwargs)


def test_a_shared_samples_folder_keeps_each_plan_and_a_second_run_samples_nothing(tmp_path, teacher, reward):
    params = SamplingParams(n=3, temperature=1.0, top_p=1.0, max_new_tokens=12, seed=5)
    other = SamplingParams(n=2, temperature=1.0, top_p=1.0, max_new_tokens=12, seed=5)
    shared = tmp_path / "samples" / "teacher"
    Counting.calls = 0
    first = sample_shards(ROWS, shared, lambda: Counting(teacher), reward, params, 4, "m", shared=True)
    assert Counting.calls == 3
    texts = [p.read_bytes() for p in first]
    # another run's plan (other settings) lands beside it and removes nothing
    second = sample_shards(ROWS, shared, lambda: Counting(teacher), reward, other, 4, "m", shared=True)
    assert Counting.calls == 6 and first[0].parent != second[0].parent
    assert [p.read_bytes() for p in first] == texts
    # a third run with the first plan: every shard reused, the generator never opened
    again = sample_shards(ROWS, shared, lambda: 1 / 0, reward, params, 4, "m", shared=True)
    assert again == first and [p.read_bytes() for p in again] == texts


def test_adaptive_n_samples_only_the_unsolved_problems_again(tmp_path, reward):
    hard = build_scripted_model(tmp_path / "hard", p=0.15)
    params = SamplingParams(n=2, temperature=1.0, top_p=1.0, max_new_tokens=12, seed=1)
    paths = sample_shards(ROWS, tmp_path / "a", lambda: HFGenerator(hard), reward, params, 5, "hard", "", 8)
    rows = [r for p in paths for r in iter_jsonl(p)]
    first_round_solved = 0
    for r in rows:
        first = [s for s in r["samples"] if s["round"] == 0]
        assert len(first) == 2
        if any(s["text"].strip() == "\\boxed{7}" for s in first):  # solved: no second round
            first_round_solved += 1
            assert len(r["samples"]) == 2
        else:  # brought to 8 samples in all
            assert len(r["samples"]) == 8 and all(s["round"] == 1 for s in r["samples"][2:])
    assert 0 < first_round_solved < len(rows)  # p = 0.15, 2 samples: most problems get a second round
    counts = verification_counts(paths)
    assert sum(c["second_round"] for c in counts.values()) == 6 * (len(rows) - first_round_solved)


def test_truncated_samples_are_counted_and_never_correct(tmp_path, teacher, reward):
    # one token: the answer, without the end-of-turn token the scripted model puts after it
    params = SamplingParams(n=4, temperature=1.0, top_p=1.0, max_new_tokens=1, seed=0)
    paths = sample_shards(
        ROWS[:2], tmp_path / "t", lambda: HFGenerator(teacher), reward, params, 8, "scripted"
    )
    counts = verification_counts(paths)
    assert sum(c["truncated"] for c in counts.values()) == 8
    assert sum(c["correct"] for c in counts.values()) == 0
    samples = [s for p in paths for r in iter_jsonl(p) for s in r["samples"]]
    # some texts alone are right answers; cut at the token limit, they score 0 (scoring.zero_truncated)
    assert 1.0 in reward([s["text"] for s in samples], answer=["7"] * len(samples))
    assert [s["score"] for s in samples] == [0.0] * len(samples)


@pytest.mark.slow
def test_a_build_with_a_teacher_hands_the_sft_stage_verified_solutions(tmp_path, teacher):
    """source -> ... -> split -> teacher -> sft.jsonl, read by the sft stage's own reader; the
    card's verification numbers equal a recount of the shard files."""
    import json
    import random

    from ssp.config.recipe import load_recipe
    from ssp.core.corpus import SFT_FIELDS, load_rows
    from ssp.launch.runner import run_pipeline

    from .conftest import ROOT

    rng = random.Random(0)
    vocab = [f"{a}{b}" for a in "bdgkmprst" for b in "aeiou"]
    src = tmp_path / "src.jsonl"
    src.write_text(
        "".join(
            json.dumps(
                {
                    "problem": " ".join(rng.choice(vocab) for _ in range(12)) + f" number {i}?",
                    "answer": "7",
                    "type": ["Algebra", "Geometry"][i % 2],
                }
            )
            + "\n"
            for i in range(16)
        )
    )
    fix = ROOT / "tests" / "fixtures" / "corpus"
    recipe = load_recipe(
        ROOT / "recipes" / "corpus_fixtures.yaml",
        [
            f"output_root={tmp_path}",
            f"data.sources=[{{name: s, path: {src}, fields: {{label: type}}, "
            "label_map: {Algebra: algebra, Geometry: geometry}}]",
            "data.domains=[algebra,geometry]",
            f"eval.benchmarks=[{{name: math500, source: {fix / 'math500.jsonl'}}}]",
            f"data.teacher.model={teacher}",
            "data.teacher.n_samples=5",
            "data.teacher.max_new_tokens=8",
            "data.teacher.shard_size=4",
            "data.rl_problems_per_domain=3",
            f"data.rl_pass_rate.model={teacher}",
            "data.rl_pass_rate.n_samples=2",
            "data.rl_pass_rate.max_new_tokens=8",
            "rl.lam=2.0",
            "generation.backend=hf",
        ],
    )
    run_pipeline(recipe)
    data = recipe.run_dir / "data"
    sft = load_rows(data / "sft.jsonl", SFT_FIELDS, "sft", domains={"algebra", "geometry"})
    assert all(r["solutions"] == ["\\boxed{7}"] for r in sft)  # the one correct text, once
    card = json.loads((data / "data_card.json").read_text())
    shards = sorted((data / "build" / "teacher").glob("shard-*.jsonl"))
    rows = [r for p in shards for r in iter_jsonl(p)]
    assert len(rows) == 16 - 2 * (1 + 2 + 3)  # per domain: 1 eval, 2 probe, 3 rl; the rest SFT
    solved = [
        r
        for r in rows
        if any(s["text"].strip() == "\\boxed{7}" and s["finish_reason"] == "stop" for s in r["samples"])
    ]
    assert len(sft) == len(solved) and card["teacher"]["unsolved"] == len(rows) - len(solved)
    for d, v in card["teacher"]["verification"].items():
        samples = [s for r in rows if r["domain"] == d for s in r["samples"]]
        assert v["correct"] == sum(s["text"].strip() == "\\boxed{7}" for s in samples)
    assert not (data / "sft_problems.jsonl").exists()
    assert card["labels"]["over_sft_cap"] == 0  # no cap: every labelled row is in a split or dropped
    assert "## Teacher solutions" in (data / "data_card.md").read_text()

    # RL prompts: pass rate = share of \\boxed{7} among the 2 samples (few, so some prompts fall outside the window), recounted from the shards
    measured = {}
    for p in sorted((data / "build" / "rl_pass_rates").glob("shard-*.jsonl")):
        for r in iter_jsonl(p):
            measured[r["id"]] = sum(s["text"].strip() == "\\boxed{7}" for s in r["samples"]) / 2
    assert len(measured) == 6
    kept = (
        {r["id"]: r["pass_rate"] for r in iter_jsonl(data / "rl.jsonl")}
        if (data / "rl.jsonl").exists()
        else {}
    )
    assert kept == {i: pytest.approx(v) for i, v in measured.items() if 0 < v < 1}
    window = card["rl_pass_rate"]
    assert window["prompts"] == 6 and window["kept"] == len(kept)
    assert len(kept) < 6  # the window dropped some: the card's over_sft_cap must not count them
    assert sum(window["histogram_all"]) == 6 and sum(window["histogram_kept"]) == len(kept)
    if kept:  # w = exp(-lambda KL(Ber(p) || Ber(1/2))), computed here by hand
        import math

        def w(p):
            return math.exp(-2.0 * (p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p))))

        expected = sum(w(p) for p in kept.values()) / len(kept)
        assert window["mgpo_weight"]["mean"] == pytest.approx(expected, abs=1e-4)
    assert "## RL prompts by pass rate" in (data / "data_card.md").read_text()
