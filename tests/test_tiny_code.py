"""The tiny task's code domain (data_pipeline/tiny/code.py), code rows in the corpus files, and the
``by_domain`` reward that scores each row with its domain's verifier.

The tests of a generated problem are checked against values computed here from the numbers in
the problem's own statement (not from the generator's programs), and every reference program is
run against them in the real sandbox by ``code_tests``."""

from __future__ import annotations

import ast
import json
import re

import pytest

from ssp.core.corpus import PROBLEM_FIELDS, SFT_FIELDS, load_rows, write_rows
from ssp.core.errors import DataError
from ssp.data_pipeline.tiny.code import CODE_GENERATORS
from ssp.data_pipeline.tiny.problems import generate
from ssp.data_pipeline.tiny.splits import tiny_splits
from ssp.reward import get_reward
from ssp.reward.outcome import RewardError
from ssp.reward.sandbox import isolation

needs_sandbox = pytest.mark.skipif(
    not isolation()["bubblewrap"], reason="bubblewrap (bwrap) is not usable here"
)


def _numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"-?\d+", text)]


def _expected(kind: str, problem: str, args: list):
    """What a test's output must be, from the statement's numbers alone."""
    nums = _numbers(problem)
    if kind == "affine":  # "... returns a * x + b" / "a times x plus b" / "ax + b"
        a, b = nums[0], nums[1]
        return a * args[0] + b
    if kind == "count_multiples":
        k, r = (nums[1], nums[0]) if "remainder" in problem else (nums[0], 0)
        return sum(1 for v in args[0] if v % k == r)
    if kind == "spread":
        return max(args[0]) - min(args[0]) + nums[-1]
    if kind == "multiples_sum":
        k, n = nums[0], args[0]
        return k * n * (n + 1) // 2
    if kind == "weighted_pair":
        p, r = nums[0], nums[1]
        return p * args[0] + r * args[1]
    raise AssertionError(f"no check for {kind}")


def _args(test: dict) -> list:
    if test["testtype"] == "functional":
        return [json.loads(line) for line in test["input"].splitlines()]
    return [int(v) for v in test["input"].split()]


def test_every_kind_is_generated_and_its_tests_follow_from_the_statement():
    problems = generate("code", 400, seed=7)
    kinds = {p.kind for p in problems}
    assert kinds == {g.__name__ for g in CODE_GENERATORS}
    for p in problems:
        assert p.domain == "code" and p.answer == "" and len(p.tests) >= 3
        assert (p.fn_name == "f") == (p.tests[0]["testtype"] == "functional")
        for t in p.tests:
            out = json.loads(t["output"]) if t["testtype"] == "functional" else int(t["output"])
            assert out == _expected(p.kind, p.problem, _args(t)), (p.problem, t)


def _shape(program: str) -> str:
    """A program's syntax tree with its numbers blanked: two solutions of one problem must differ
    in more than their constants."""
    tree = ast.parse(program.removeprefix("```python\n").removesuffix("\n```"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            node.value = 0
    return ast.dump(tree)


def test_each_problem_has_genuinely_different_programs():
    for p in generate("code", 200, seed=3):
        assert len(p.solutions) >= 2
        assert len({s.strategy for s in p.solutions}) == len(p.solutions)
        assert len({_shape(s.text) for s in p.solutions}) == len(p.solutions), p.problem


@needs_sandbox
@pytest.mark.slow
def test_every_reference_program_passes_its_tests_and_a_changed_one_fails():
    problems = [
        p for kind in CODE_GENERATORS for p in generate("code", 60, seed=11) if p.kind == kind.__name__
    ][:40]
    items = [(s.text, p) for p in problems for s in p.solutions]
    # the same program with its last number changed: it must fail at least one test
    broken = [
        (re.sub(r"(\d+)(?!.*\d)", lambda m: str(int(m.group(1)) + 1), t, flags=re.S), p) for t, p in items
    ]
    reward = get_reward("code_tests", max_concurrency=2, test_seconds=3)
    try:
        everything = items + broken
        scores = reward(
            [t for t, _ in everything],
            tests=[json.dumps(list(p.tests)) for _, p in everything],
            fn_name=[p.fn_name or None for _, p in everything],
        )
    finally:
        reward.close() if hasattr(reward, "close") else None
    assert reward.last.counts["scored"] == len(everything)
    assert scores[: len(items)] == [1.0] * len(items)
    assert scores[len(items) :] == [0.0] * len(broken)


def test_code_rows_keep_their_tests_through_the_corpus_files(tmp_path):
    sizes = {"eval": 3, "probe": 2, "rl": 2, "sft": 4}
    splits = tiny_splits(["algebra", "code"], sizes, seed=5, solutions=2)
    for name, rows in splits.items():
        path = write_rows(rows, tmp_path / f"{name.replace('/', '_')}.jsonl")
        back = load_rows(path, SFT_FIELDS if name == "sft" else PROBLEM_FIELDS, name)
        for row in back:
            if row["domain"] == "code":
                assert json.loads(row["tests"]) and row["fn_name"] in ("f", None) and not row["answer"]
            else:
                assert row["answer"] and row.get("tests") is None
    sft = load_rows(tmp_path / "sft.jsonl", SFT_FIELDS, "sft")
    assert {r["domain"] for r in sft} == {"algebra", "code"}  # the math rows come first in the file


def test_a_code_row_without_runnable_tests_is_an_error_naming_it(tmp_path):
    good = {"id": "a", "domain": "code", "problem": "p", "tests": '[{"input": "1", "output": "2"}]'}
    cases = [
        ({**good, "tests": "[{"}, "field 'tests' is not JSON"),
        ({**good, "tests": "[]"}, "field 'tests' must be a non-empty list"),
        ({**good, "tests": '[{"input": "1"}]'}, "test 1 needs an 'input' and an 'output'"),
        ({**good, "tests": '[{"input": "1", "output": "2", "testtype": "functional"}]'}, "names no function"),
        (
            {**good, "fn_name": "f", "tests": '[{"input": "1", "output": "True", "testtype": "functional"}]'},
            "its output is not a JSON value",
        ),
        (
            {"id": "a", "domain": "code", "problem": "p"},
            "field 'answer' is missing or empty (probe split) (a code row",
        ),
    ]
    for row, message in cases:
        path = write_rows([row], tmp_path / "rows.jsonl")
        with pytest.raises(DataError, match=re.escape(f"{path}: row 1: ") + ".*" + re.escape(message)):
            load_rows(path, PROBLEM_FIELDS, "probe")
    assert load_rows(write_rows([good], tmp_path / "ok.jsonl"), PROBLEM_FIELDS, "probe")[0]["answer"] == ""


@needs_sandbox
def test_by_domain_scores_each_row_with_its_domains_reward():
    from ssp.sampling.generation import Completion
    from ssp.sampling.scoring import zero_truncated

    code = generate("code", 2, seed=4)
    algebra = generate("algebra", 2, seed=4)
    reward = get_reward(
        "by_domain",
        domains={"code": {"name": "code_tests", "options": {"test_seconds": 3}}},
        default="math_correctness",
    )
    completions = [
        code[0].solutions[0].text,  # right program
        "```python\ndef f(*a):\n    return -1\n```"
        if code[1].fn_name
        else "```python\nprint(-1)\n```",  # wrong
        algebra[0].solutions[0].text,  # right answer
        "\\boxed{-12345}",  # wrong answer
    ]
    columns = {
        "domain": ["code", "code", "algebra", "algebra"],
        "tests": [json.dumps(list(code[0].tests)), json.dumps(list(code[1].tests)), None, None],
        "fn_name": [code[0].fn_name or None, code[1].fn_name or None, None, None],
        "answer": [None, None, algebra[0].answer, algebra[1].answer],
    }
    try:
        assert reward(completions, **columns) == [1.0, 0.0, 1.0, 0.0]
        assert reward.last.statuses == ["scored"] * 4
        # math zeroes a truncated completion, code runs what it holds: per item
        assert reward.grades_truncated is None and reward.truncation_graded == [True, True, False, False]
        cut = [Completion(c, 96, "length") for c in completions]
        assert zero_truncated(reward, cut, [1.0, 0.0, 1.0, 0.0]) == [1.0, 0.0, 0.0, 0.0]
        with pytest.raises(RewardError, match=r"needs each item's domain"):
            reward(completions, answer=columns["answer"])
    finally:
        reward.close()
    only_code = get_reward("by_domain", domains={"code": "code_tests"})
    with pytest.raises(RewardError, match=r"no reward for domain\(s\) \['algebra'\]"):
        only_code(completions, **columns)
    only_code.close()


@needs_sandbox
def test_the_greedy_check_scores_code_rows_by_their_tests(tmp_path):
    """SFT's greedy held-out check on math and code rows: a scripted model whose greedy answer is
    always a program printing 7 is right on the code rows (a test expecting 7) and wrong on the
    math rows (gold 7, no boxed answer), as counted here; before, every code row read as wrong."""
    from ssp.sampling.greedy import greedy_accuracy

    from .helpers.scripted_model import build_scripted_model

    model = build_scripted_model(
        tmp_path / "m", p=0.7, completions=("```python\nprint(7)\n```", "\\boxed{7}")
    )
    tests = json.dumps([{"testtype": "stdin", "input": "", "output": "7\n"}])
    rows = [{"id": f"a{i}", "domain": "algebra", "problem": f"Q{i}", "answer": "7"} for i in range(2)]
    rows += [
        {"id": f"c{i}", "domain": "code", "problem": f"P{i}", "tests": tests, "fn_name": None}
        for i in range(3)
    ]
    result = greedy_accuracy(model, rows, max_new_tokens=4)
    assert result["per_domain"] == {"algebra": 0.0, "code": 1.0} and result["accuracy"] == 3 / 5


def test_a_phases_heldout_curve_measures_its_own_domains(tmp_path):
    from ssp.core.context import StageContext
    from ssp.core.outputs import DataOutputs
    from ssp.stages.rl import _heldout_curve

    from .conftest import fast_recipe

    rows = tiny_splits(["algebra", "code"], {"eval": 4, "probe": 1, "rl": 1, "sft": 1}, seed=2, solutions=1)[
        "eval"
    ]
    path = write_rows(rows, tmp_path / "eval.jsonl")
    recipe = fast_recipe(tmp_path, "rl.phases=[{name: m, domains: [algebra]}, {name: c, domains: [code]}]")
    ctx = StageContext(
        "rl", tmp_path, tmp_path / "rl", {"data": DataOutputs(model="m", data_card="c", eval=str(path))}
    )
    for phase, domain in zip(recipe.rl.phases, ("algebra", "code"), strict=True):
        curve = _heldout_curve(recipe, ctx, phase, reward=None)
        assert {r["domain"] for r in curve.rows} == {domain} and len(curve.rows) == 4


def test_without_a_sandbox_the_greedy_check_leaves_code_rows_unchecked(tmp_path, monkeypatch):
    """A machine without bubblewrap (a stand-in: the greedy check's probe for it answers "none"):
    the code rows are not scored at all (never read as wrong), said in the result; math is."""
    from ssp.sampling import greedy

    from .helpers.scripted_model import build_scripted_model

    monkeypatch.setattr(greedy, "isolation", lambda: {"bubblewrap": False})
    model = build_scripted_model(
        tmp_path / "m", p=0.7, completions=("\\boxed{7}", "```python\nprint(7)\n```")
    )
    tests = json.dumps([{"testtype": "stdin", "input": "", "output": "7\n"}])
    rows = [{"id": "a", "domain": "algebra", "problem": "Q", "answer": "7"}]
    rows += [{"id": "c", "domain": "code", "problem": "P", "tests": tests, "fn_name": None}]
    result = greedy.greedy_accuracy(model, rows, max_new_tokens=4)
    assert result["unchecked"] == ["code"] and result["per_domain"] == {"algebra": 1.0} and result["n"] == 1


def test_the_held_out_file_splits_into_tiny_heldout_and_tiny_code(tmp_path):
    from ssp.config.eval import BenchmarkSpec
    from ssp.evaluation.benchmarks import load_benchmark

    rows = tiny_splits(["algebra", "code"], {"eval": 5, "probe": 1, "rl": 1, "sft": 1}, seed=4, solutions=1)[
        "eval"
    ]
    path = write_rows(rows, tmp_path / "eval.jsonl")
    _, math, _ = load_benchmark(BenchmarkSpec(name="tiny_heldout"), default_source=str(path))
    bench, code, proto = load_benchmark(BenchmarkSpec(name="tiny_code"), default_source=str(path))
    assert [r["id"] for r in math] == [r["id"] for r in rows if r["domain"] == "algebra"]
    assert [r["id"] for r in code] == [r["id"] for r in rows if r["domain"] == "code"]
    assert all(json.loads(r["tests"]) for r in code) and bench.reward == "code_tests" and proto.n_samples == 4
