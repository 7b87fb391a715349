"""Evaluation: metrics on hand cases, every benchmark loader on fixture files in its public column
layout (written here; nothing is downloaded), protocol defaults, and the eval stage end to end."""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import zlib

import pytest

from ssp.config.eval import BenchmarkSpec
from ssp.core.errors import DataError, RecipeError
from ssp.evaluation.benchmarks import BENCHMARKS, MATH_SUFFIX, load_benchmark, protocol_for
from ssp.evaluation.metrics import majority_correct, summarize, vote_key
from ssp.reward import get_reward
from ssp.reward.multiple_choice import choice_letter

from .conftest import ROOT, fast_recipe, ssp_cmd
from .helpers.machine import needs_bwrap
from .helpers.scripted_model import build_scripted_model, expected_answer
from .helpers.scripted_run import write_problems

# --- metrics ------------------------------------------------------------------------


def test_majority_vote_hand_cases():
    # correct samples vote together for the gold answer, whatever their spelling
    assert majority_correct(["5", "5.0", "7", None], [1.0, 1.0, 0.0, 0.0])
    assert not majority_correct(["7", "7", "5"], [0.0, 0.0, 1.0])
    # a tie goes to the answer reached first
    assert majority_correct(["5", "7"], [1.0, 0.0])
    assert not majority_correct(["7", "5"], [0.0, 1.0])
    # no answer at all: unsolved; unanswered samples do not vote
    assert not majority_correct([None, None], [0.0, 0.0])
    assert majority_correct([None, None, "3"], [0.0, 0.0, 1.0])
    # unscorable (None) samples are not correct
    assert not majority_correct(["3", "4", "4"], [None, 0.0, 0.0])


def test_summarize_hand_case():
    problems = [
        {
            "domain": "a",
            "scores": [1.0, 0.0, 0.0, 0.0],
            "keys": ["3", "4", "4", "5"],
            "tokens": [10, 20, 30, 40],
            "finish": ["stop", "stop", "length", "stop"],
        },
        {
            "domain": "b",
            "scores": [1.0, 1.0, 1.0, 1.0],
            "keys": ["9"] * 4,
            "tokens": [10] * 4,
            "finish": ["stop"] * 4,
        },
    ]
    m = summarize(problems, (1, 2, 4), votes=True)
    assert m["pass@1"] == pytest.approx(5 / 8)
    assert m["pass@2"] == pytest.approx((0.5 + 1.0) / 2)  # 1 - C(3,2)/C(4,2) = 0.5 for the first
    assert m["pass@4"] == pytest.approx(1.0)
    assert m["cons@4"] == pytest.approx(0.5)  # the first problem's majority is the wrong "4"
    assert m["truncated"] == pytest.approx(1 / 8)
    assert m["mean_tokens"] == pytest.approx(140 / 8)
    assert m["pass@1_per_domain"] == pytest.approx({"a": 0.25, "b": 1.0})
    assert summarize(problems, (1,), votes=False)["cons@4"] is None
    assert (m["unscorable_rate"], m["timeout_rate"], m["error_rate"]) == (0, 0, 0)
    # samples the reward could not score count as wrong, and are counted by cause
    problems[1]["scores"] = [1.0, None, None, None]
    problems[1]["statuses"] = ["scored", "timeout", "error", "unscorable"]
    m = summarize(problems, (1, 2, 4), votes=True)
    assert m["pass@1"] == pytest.approx(2 / 8)
    assert (m["unscorable_rate"], m["timeout_rate"], m["error_rate"]) == (1 / 8, 1 / 8, 1 / 8)


def test_skipped_prompts_and_unanswered_samples_are_their_own_columns():
    """A prompt too long for the context is never sampled: counted as skipped (and wrong), not as
    truncated; samples without a final answer are their share (from rewards that tell)."""
    from ssp.evaluation.evaluate import markdown

    problems = [
        {
            "domain": "a",
            "scores": [0.0, 0.0],
            "keys": [None, None],
            "tokens": [0, 0],
            "finish": ["prompt_too_long"] * 2,
            "missing": ["", ""],
        },
        {
            "domain": "a",
            "scores": [1.0, 0.0],
            "keys": ["3", None],
            "tokens": [5, 9],
            "finish": ["stop", "stop"],
            "missing": ["", "no_answer"],
        },
    ]
    m = summarize(problems, (1,), votes=False)
    assert (m["skipped"], m["truncated"], m["pass@1"], m["no_answer_rate"]) == (1, 0.0, 0.25, 0.25)
    m.update(
        protocol={"k": [1], "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 40960},
        max_new_tokens_used=512,
        grader="ssp",
    )
    table = markdown({"benchmarks": {"b": {"title": "B"}}, "results": {"m": {"b": m}}})
    assert "max_new_tokens 40960 asked; graded by ssp" in table
    assert "| m | 25.0 | - | 0.0 | 25.0 | 0.0 | 0.0 | 0.0 | 1 | 512 | 4 |" in table


def test_vote_keys_and_multiple_choice():
    assert vote_key("so \\boxed{ five }.", "math_correctness") == "5"
    assert vote_key("\\boxed{x = 3}", "math_correctness") == "3"
    assert vote_key("no box here", "math_correctness") is None
    assert choice_letter("thus \\boxed{(C)}") == "C"
    assert choice_letter("The answer is (B).") == "B"
    assert choice_letter("\\boxed{E}") is None
    assert choice_letter("<think>maybe \\boxed{A}</think>so \\boxed{C}") == "C"  # after </think> only
    assert choice_letter("<think>it is \\boxed{A}") is None  # cut mid-thought
    mc = get_reward("multiple_choice")
    assert mc(["\\boxed{A}", "answer: d", "nothing", "\\boxed{A}"], answer=["A", "D", "A", "Z"]) == [
        1.0,
        1.0,
        0.0,
        None,
    ]


# --- benchmark loaders on their public layouts ---------------------------------------


def _lcb_private(tests: list[dict]) -> str:
    """LiveCodeBench's compressed form: base64(zlib(pickle(json string)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


LAYOUTS = {
    # HuggingFaceH4/aime_2024
    "aime24": [
        {
            "id": 60,
            "problem": "Find $x$ if $x+1=205$.",
            "solution": "...",
            "answer": "204",
            "url": "https://artofproblemsolving.com/...",
            "year": "2024",
        }
    ],
    # math-ai/aime25
    "aime25": [{"problem": "Compute $2+2$.", "answer": "4", "id": "0"}],
    # MathArena/hmmt_feb_2025
    "hmmt25": [
        {"problem_idx": 1, "problem": "Compute $10^2+3$.", "answer": "103", "problem_type": ["Number Theory"]}
    ],
    # HuggingFaceH4/MATH-500
    "math500": [
        {
            "problem": "What is $\\frac12+\\frac14$?",
            "solution": "...",
            "answer": "\\frac{3}{4}",
            "subject": "Prealgebra",
            "level": 2,
            "unique_id": "test/prealgebra/1.json",
        },
        {
            "problem": "Solve $2x=6$.",
            "solution": "...",
            "answer": "3",
            "subject": "Algebra",
            "level": 1,
            "unique_id": "test/algebra/2.json",
        },
    ],
    # Idavidrein/gpqa, configuration gpqa_diamond
    "gpqa_diamond": [
        {
            "Question": "Which particle is a lepton?",
            "Correct Answer": "electron",
            "Incorrect Answer 1": "proton",
            "Incorrect Answer 2": "neutron",
            "Incorrect Answer 3": "pion",
            "Record ID": "rec7",
            "High-level domain": "Physics",
            "Subdomain": "Particle physics",
            "Explanation": "...",
        }
    ],
    # livecodebench/code_generation_lite (one problem per version window, one outside both)
    "lcb": [
        {
            "question_title": "Add",
            "question_content": "Read two integers and print their sum.",
            "platform": "atcoder",
            "question_id": "abc1",
            "contest_id": "abc1",
            "contest_date": "2024-09-01T00:00:00",
            "starter_code": "",
            "difficulty": "easy",
            "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
            "private_test_cases": _lcb_private([{"input": "5 6\n", "output": "11\n", "testtype": "stdin"}]),
            "metadata": "{}",
        },
        {
            "question_title": "Max",
            "question_content": "Return the larger of a and b.",
            "platform": "leetcode",
            "question_id": "lc2",
            "contest_id": "w1",
            "contest_date": "2025-03-10T00:00:00",
            "starter_code": "class Solution:\n    def larger(self, a: int, b: int) -> int:\n        ",
            "difficulty": "medium",
            "public_test_cases": json.dumps([{"input": "1\n2", "output": "2", "testtype": "functional"}]),
            "private_test_cases": json.dumps([{"input": "7\n3", "output": "7", "testtype": "functional"}]),
            "metadata": json.dumps({"func_name": "larger"}),
        },
        {
            "question_title": "Old",
            "question_content": "Too old.",
            "platform": "atcoder",
            "question_id": "abc0",
            "contest_id": "abc0",
            "contest_date": "2023-05-01T00:00:00",
            "starter_code": "",
            "difficulty": "easy",
            "public_test_cases": json.dumps([{"input": "", "output": "1\n", "testtype": "stdin"}]),
            "private_test_cases": "",
            "metadata": "{}",
        },
    ],
}

CORRECT = {
    "aime24": ["\\boxed{204}"],
    "aime25": ["\\boxed{4}"],
    "hmmt25": ["\\boxed{103}"],
    "math500": ["\\boxed{0.75}", "\\boxed{3}"],
}


def _write(rows, path):
    import datasets

    if path.suffix == ".parquet":
        datasets.Dataset.from_list(rows).to_parquet(str(path))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
@pytest.mark.parametrize("name", ["aime24", "aime25", "hmmt25", "math500"])
def test_math_loaders_read_the_public_layout(tmp_path, name, suffix):
    path = _write(LAYOUTS[name], tmp_path / f"{name}{suffix}")
    bench, rows, proto = load_benchmark(BenchmarkSpec(name=name, source=str(path)))
    assert [r["problem"] for r in rows] == [r["problem"] for r in LAYOUTS[name]]
    assert all(set(r) >= {"id", "domain", "problem", "answer"} for r in rows)
    reward = get_reward(bench.reward, workers=1)
    try:
        assert reward(CORRECT[name], answer=[r["answer"] for r in rows]) == [1.0] * len(rows)
    finally:
        reward.close()
    if name == "math500":
        assert [r["domain"] for r in rows] == ["Prealgebra", "Algebra"]


def test_gpqa_loader_shuffles_options_stably(tmp_path):
    path = _write(LAYOUTS["gpqa_diamond"], tmp_path / "gpqa.parquet")
    _, rows, proto = load_benchmark(BenchmarkSpec(name="gpqa_diamond", source=str(path)))
    (row,) = rows
    letter = row["answer"]
    assert f"({letter}) electron" in row["problem"]
    assert all(f"({x}) " in row["problem"] for x in "ABCD")
    assert load_benchmark(BenchmarkSpec(name="gpqa_diamond", source=str(path)))[1] == rows  # same order
    assert get_reward("multiple_choice")([f"\\boxed{{{letter}}}"], answer=[letter]) == [1.0]
    assert proto.n_samples == 16


@needs_bwrap
def test_livecodebench_loaders_split_by_date_and_decode_private_tests(tmp_path):
    path = _write(LAYOUTS["lcb"], tmp_path / "lcb.jsonl")
    _, v5, _ = load_benchmark(BenchmarkSpec(name="lcb_v5", source=str(path)))
    _, v6, _ = load_benchmark(BenchmarkSpec(name="lcb_v6", source=str(path)))
    assert [r["id"] for r in v5] == ["abc1"] and [r["id"] for r in v6] == ["lc2"]
    assert json.loads(v5[0]["tests"])[1] == {"input": "5 6\n", "output": "11\n", "testtype": "stdin"}
    assert v6[0]["fn_name"] == "larger" and "class Solution" in v6[0]["problem"]
    program = "```python\nclass Solution:\n    def larger(self, a, b):\n        return max(a, b)\n```"
    reward = get_reward("code_tests")
    assert reward([program], tests=[v6[0]["tests"]], fn_name=[v6[0]["fn_name"]]) == [1.0]


def test_livecodebench_refuses_pickled_code(tmp_path):
    """Hub data is untrusted: a private_test_cases pickle that would call os.system is refused."""

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path}/pwned",))

    row = dict(
        LAYOUTS["lcb"][0], private_test_cases=base64.b64encode(zlib.compress(pickle.dumps(Evil()))).decode()
    )
    path = _write([row], tmp_path / "evil.jsonl")
    with pytest.raises(DataError, match=r"evil.jsonl: row 1: private_test_cases.*refusing"):
        load_benchmark(BenchmarkSpec(name="lcb_v5", source=str(path)))
    assert not (tmp_path / "pwned").exists()


def test_a_missing_column_names_file_row_and_column(tmp_path):
    path = _write([{"problem": "1+1?", "answer": "2"}, {"question": "2+2?"}], tmp_path / "aime25.jsonl")
    with pytest.raises(
        DataError, match=r"aime25.jsonl: row 2: benchmark aime25 needs column 'answer' or 'Answer'"
    ):
        load_benchmark(BenchmarkSpec(name="aime25", source=str(path)))
    with pytest.raises(DataError, match=r"file not found: .*nope.parquet"):
        load_benchmark(BenchmarkSpec(name="aime24", source=str(tmp_path / "nope.parquet")))


def test_protocol_defaults_are_the_reports():
    aime = protocol_for(BenchmarkSpec(name="aime24"))
    assert (aime.n_samples, aime.temperature, aime.top_p, aime.top_k) == (64, 1.0, 0.95, -1)
    assert aime.max_new_tokens == 40960 and aime.prompt_suffix == MATH_SUFFIX
    assert aime.prompt_suffix == "Let's think step by step and output the final answer within \\boxed{}."
    assert 64 in aime.k and 1 in aime.k
    for name in ("aime25", "hmmt25", "math500"):
        assert protocol_for(BenchmarkSpec(name=name)) == aime
    assert protocol_for(BenchmarkSpec(name="gpqa_diamond")).n_samples == 16
    for name in ("lcb_v5", "lcb_v6"):
        p = protocol_for(BenchmarkSpec(name=name))
        assert (p.n_samples, p.temperature, p.top_p) == (8, 0.6, 0.95)
    # a recipe's departures win; k above n is dropped
    p = protocol_for(BenchmarkSpec(name="aime24", n_samples=8, temperature=0.6, max_new_tokens=100))
    assert (p.n_samples, p.temperature, p.max_new_tokens, p.k) == (8, 0.6, 100, (1, 8))
    assert set(BENCHMARKS) == {
        "aime24",
        "aime25",
        "hmmt25",
        "math500",
        "gpqa_diamond",
        "lcb_v5",
        "lcb_v6",
        "tiny_heldout",
        "tiny_code",
    }


def test_recipe_errors_name_the_benchmark_key():
    from ssp.config.recipe import load_recipe

    with pytest.raises(RecipeError, match=r"eval.benchmarks\[0\].name: unknown benchmark 'aime2024'"):
        load_recipe(None, ["eval.benchmarks=[{name: aime2024}]"])


@pytest.mark.slow
def test_hub_sources_fail_clearly_where_no_hub_is_reachable(tmp_path):
    """HF_HUB_OFFLINE makes `datasets` refuse the hub without trying the network (the test double
    for an unreachable hub). Benchmarks load before any model, so no model is needed."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    out = subprocess.run(
        ssp_cmd("eval", "some-model", "--benchmarks", "aime24", "--out", str(tmp_path / "e")),
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert "benchmark aime24: cannot load hub dataset 'HuggingFaceH4/aime_2024'" in out.stderr
    assert "set eval.benchmarks[0].source to the local file" in out.stderr


# --- the eval stage ----------------------------------------------------------------


@pytest.mark.slow
def test_eval_stage_compares_models_and_resumes(tmp_path):
    """data + SFT, then the eval stage on the base model and the last SFT checkpoint: JSON, Markdown,
    PNG and one Parquet of scored completions per (model, benchmark); a second call with the
    stage's settings reuses units (tests/test_eval_reuse.py: and only then)."""
    import pyarrow.parquet as pq

    from ssp.evaluation.evaluate import evaluate
    from ssp.launch.runner import execute_here

    recipe = fast_recipe(tmp_path, "stages=[data,sft,eval]", "eval.models=[base,sft]")
    for stage in recipe.stages:
        execute_here(stage, recipe)
    out = recipe.run_dir / "eval"
    summary = json.loads((out / "results.json").read_text())
    assert list(summary["results"]) == ["base", "sft"]
    m = summary["results"]["sft"]["tiny_heldout"]
    assert m["problems"] == 16 and m["samples_per_problem"] == 4
    assert {"pass@1", "pass@4", "cons@4", "truncated", "mean_tokens"} <= set(m)
    assert 0 <= m["pass@1"] <= m["pass@4"] <= 1
    table = pq.read_table(out / "completions" / "sft__tiny_heldout.parquet").to_pylist()
    assert len(table) == 16 * 4
    assert {"problem_id", "sample", "text", "num_tokens", "finish_reason", "answer", "score"} <= set(table[0])
    assert sum(r["score"] == 1.0 for r in table) / len(table) == pytest.approx(m["pass@1"])
    assert (out / "pass1.png").stat().st_size > 1000
    assert "| sft |" in (out / "results.md").read_text()

    stamp = (out / "by_unit" / "sft__tiny_heldout.json").stat().st_mtime_ns
    from ssp.core.manifest import Manifest

    models = Manifest(recipe.run_dir).stage("eval")["metrics"]["models"]
    again = evaluate(
        models,
        recipe.eval.benchmarks,
        recipe.eval,
        out,
        default_sources={"tiny_heldout": str(recipe.run_dir / "data" / "eval.jsonl")},
        default_suffixes={"tiny_heldout": recipe.data.prompt_suffix},
        generation=recipe.generation,
    )
    assert (out / "by_unit" / "sft__tiny_heldout.json").stat().st_mtime_ns == stamp
    assert again["results"]["sft"]["tiny_heldout"] == m


@pytest.mark.slow
@pytest.mark.xdist_group("vllm")  # `ssp eval` samples with vLLM where it is installed
def test_ssp_eval_cli_scores_two_models_with_different_tokenizers_independently(tmp_path):
    """`ssp eval a=... b=...` on two scripted models (tests/helpers/scripted_model.py) that answer
    "7" 90% and 10% of the time, with different tokenizers (their answer tokens sit at other ids).
    One engine must not sample b through a's tokenizer (it once did: garbled text, a wrong score).
    Every completion must be one of the two scripted answers, and each model's Pass@1 must equal
    the test's own count over its saved completions."""
    import pyarrow.parquet as pq

    a = build_scripted_model(tmp_path / "a", p=0.9)
    b = build_scripted_model(tmp_path / "b", p=0.1, order=3)
    bench = write_problems(tmp_path / "heldout.jsonl", "algebra", gold="7", count=16)
    out = subprocess.run(
        ssp_cmd(
            "eval",
            f"a={a}",
            f"b={b}",
            "--benchmarks",
            f"tiny_heldout={bench}",
            "--n-samples",
            "8",
            "--max-new-tokens",
            "4",
            "--out",
            str(tmp_path / "e"),
            "--graders",
            "ssp",
            "deepscaler",
            "qwen25math",
        ),
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| a |" in out.stdout and "| b |" in out.stdout
    summary = json.loads((tmp_path / "e" / "results.json").read_text())
    for name, p in (("a", 0.9), ("b", 0.1)):
        samples = pq.read_table(tmp_path / "e" / "completions" / f"{name}__tiny_heldout.parquet").to_pylist()
        answers = [expected_answer(s["text"]) for s in samples]
        assert len(samples) == 128 and set(answers) <= {"7", "8"}, f"{name}: garbled completions"
        m = summary["results"][name]["tiny_heldout"]
        assert m["pass@1"] == pytest.approx(answers.count("7") / 128)
        assert abs(m["pass@1"] - p) < 0.12, (name, m["pass@1"])
        assert (m["timeout_rate"], m["error_rate"], m["unscorable_rate"]) == (0, 0, 0)
        assert (m["no_answer_rate"], m["skipped"], m["max_new_tokens_used"]) == (0, 0, 4)
        # every answer is a plain boxed 7 or 8: the three graders must agree sample by sample
        g = m["graders"]
        assert g["samples"] == 128 and set(g["disagreements"].values()) == {0}
        assert all(v == pytest.approx(m["pass@1"]) for v in g["pass@1"].values())
    assert "Pass@1 (%) by grader" in out.stdout and "| skipped | token limit |" in out.stdout
    assert summary["cost"]["unit"] in ("cpu_core_hours", "gpu_hours")


@pytest.mark.slow
def test_eval_stops_at_the_budget_after_a_finished_unit(tmp_path):
    """A stage context whose pipeline is already over cost.max_usd: the first (model, benchmark)
    pair is written, then the stage stops with the budget message; a later call reuses that pair."""
    from ssp.core.context import StageContext
    from ssp.core.cost import BudgetExceeded, CostConfig, CostMeter, Hardware
    from ssp.evaluation.evaluate import evaluate
    from ssp.launch.runner import execute_here

    recipe = fast_recipe(tmp_path)
    execute_here("data", recipe)
    model = str(recipe.run_dir / "data" / "base_model")
    out = tmp_path / "eval"
    meter = CostMeter(CostConfig(max_usd=1.0), Hardware("gpu", 1, "test"), earlier={"usd": 5.0})
    ctx = StageContext("eval", recipe.run_dir, out, {}, cost=meter)
    sources = {"tiny_heldout": str(recipe.run_dir / "data" / "eval.jsonl")}
    with pytest.raises(
        BudgetExceeded,
        match=r"stage 'eval' stopped: the pipeline has cost \$5.\d\d, over its budget.*results so far",
    ):
        evaluate({"a": model, "b": model}, recipe.eval.benchmarks, recipe.eval, out, sources, ctx=ctx)
    assert [p.name for p in (out / "by_unit").iterdir()] == ["a__tiny_heldout.json"]
    done = evaluate({"a": model, "b": model}, recipe.eval.benchmarks, recipe.eval, out, sources)
    assert set(done["results"]) == {"a", "b"}


def test_a_bad_reward_option_stops_eval_before_any_sampling(tmp_path):
    """A misspelt reward option names the recipe key that set it, as a recipe error, before a model
    is loaded (it used to surface as a TypeError traceback once the first model had been loaded)."""
    from ssp.evaluation.evaluate import evaluate
    from ssp.launch.runner import execute_here

    recipe = fast_recipe(tmp_path, "eval.benchmarks[0].reward_options={bogus: 1}")
    execute_here("data", recipe)
    out = tmp_path / "eval"
    sources = {"tiny_heldout": str(recipe.run_dir / "data" / "eval.jsonl")}
    with pytest.raises(
        RecipeError, match=r"eval.benchmarks\[0\].reward_options: reward 'math_correctness': .*'bogus'"
    ):
        evaluate({"a": "no-such-model"}, recipe.eval.benchmarks, recipe.eval, out, sources)
    assert not list((out / "completions").iterdir())
