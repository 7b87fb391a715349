"""Code problems through the corpus builder, on real rows of public code datasets in their published
layouts (tests/fixtures/corpus/code_layouts/, sources and licences in SOURCES.md there).

Each layout's tests are converted to the corpus' one layout (data_pipeline/code_layouts.py) and
checked by running programs against them with ``code_tests`` in the sandbox: the dataset's own
reference solutions (APPS, DeepCoder) and, for LiveCodeBench rows (which ship none), solutions
written here; a wrong program must fail. A build from these sources carries every code row's tests
into its splits, drops nothing for lacking a math answer, counts code per domain, and
decontaminates against a LiveCodeBench benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssp.config.recipe import load_recipe
from ssp.core.corpus import iter_jsonl
from ssp.data_pipeline.code_layouts import convert
from ssp.data_pipeline.filters import Limits as FilterLimits
from ssp.data_pipeline.filters import first_failed
from ssp.data_pipeline.sources import Source, _map
from ssp.reward import get_reward
from ssp.reward.sandbox import isolation

CODE = Path(__file__).parent / "fixtures" / "corpus" / "code_layouts"
needs_sandbox = pytest.mark.skipif(
    not isolation()["bubblewrap"], reason="bubblewrap (bwrap) is not usable here"
)


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (CODE / name).read_text().splitlines() if line.strip()]


def apps_rows() -> list[dict]:
    """The APPS folders as codeparrot/apps packs them into rows (problem_id, question, solutions and
    input_output as JSON strings, difficulty, url, starter_code): SOURCES.md, "HF mapping"."""
    rows = []
    for folder in sorted((CODE / "apps_original_layout" / "train").iterdir()):
        meta = json.loads((folder / "metadata.json").read_text())
        starter = folder / "starter_code.py.txt"
        rows.append(
            {
                "problem_id": int(folder.name),
                "question": (folder / "question.txt").read_text(),
                "solutions": (folder / "solutions.json").read_text(),
                "input_output": (folder / "input_output.json").read_text(),
                "difficulty": meta["difficulty"],
                "url": meta["url"],
                "starter_code": starter.read_text() if starter.exists() else "",
            }
        )
    return rows


def _code_source(name: str, fields: dict, layout: str, **more) -> Source:
    return Source(name=name, path="(rows)", fields=fields, tests_layout=layout, domain="code", **more)


SOURCES = {
    "lcb": _code_source(
        "lcb",
        {
            "problem": "question_content",
            "tests": "public_test_cases",
            "fn_name": "metadata",
            "id": "question_id",
            "starter_code": "starter_code",
        },
        "lcb",
        more_tests=["private_test_cases"],
    ),
    "apps": _code_source(
        "apps",
        {"problem": "question", "tests": "input_output", "id": "problem_id", "starter_code": "starter_code"},
        "io",
        solution_columns=["solutions"],
    ),
    "taco": _code_source(
        "taco", {"problem": "question", "tests": "input_output"}, "io", solution_columns=["solutions"]
    ),
    "deepcoder": _code_source(
        "deepcoder", {"problem": "problem", "tests": "tests"}, "deepcoder", solution_columns=["solutions"]
    ),
}
RAW = {
    "lcb": lambda: _rows("livecodebench_code_generation_lite.jsonl"),
    "apps": apps_rows,
    "taco": lambda: _rows("taco.jsonl"),
    "deepcoder": lambda: _rows("deepcoder_rllm_precursor.jsonl"),
}

# LiveCodeBench ships no solutions: one written here per fixture row (1873_A stdin, 3046 functional)
LCB_SOLUTIONS = {
    "1873_A": "```python\nfor _ in range(int(input())):\n"
    "    s = input().strip()\n    print('YES' if sum(a != b for a, b in zip(s, 'abc')) in (0, 2) else 'NO')\n```",
    "3046": "```python\nclass Solution:\n    def minimumOperations(self, num: str) -> int:\n"
    "        n = len(num)\n"
    "        best = n - (1 if '0' in num else 0)\n"
    "        for end in ('00', '25', '50', '75'):\n"
    "            j = n - 1\n"
    "            while j >= 0 and num[j] != end[1]:\n                j -= 1\n"
    "            i = j - 1\n"
    "            while i >= 0 and num[i] != end[0]:\n                i -= 1\n"
    "            if j >= 0 and i >= 0:\n                best = min(best, n - i - 2)\n"
    "        return best\n```",
}
WRONG = (
    "```python\nclass Solution:\n    def minimumOperations(self, num):\n        return 0\nprint('NO')\n```"
)


def _mapped(name: str) -> list[dict]:
    return [_map(SOURCES[name], raw, i) for i, raw in enumerate(RAW[name]())]


def test_each_layout_gives_every_row_tests_in_the_corpus_layout():
    counts = {}
    for name in SOURCES:
        for row in _mapped(name):
            assert "tests_error" not in row, (name, row["source_id"], row.get("tests_error"))
            tests = json.loads(row["tests"])
            assert tests and all(t["testtype"] in ("stdin", "functional") for t in tests)
            functional = tests[0]["testtype"] == "functional"
            assert functional == bool(row["fn_name"]), (name, row["source_id"])
            assert row["answer"] == "" and row["source_label"] == "code"
            counts[(name, row["source_id"])] = (len(tests), row["fn_name"])
    # counted in the fixtures by hand: public + private tests of LCB (SOURCES.md: 4 and 12 private)
    assert counts[("lcb", "1873_A")] == (1 + 4, None)
    assert counts[("lcb", "3046")] == (3 + 12, "minimumOperations")
    assert counts[("apps", "2404")] == (1, "findKthPositive") and counts[("apps", "4184")] == (8, "is_prime")
    assert counts[("taco", "0")][0] == 134 and counts[("deepcoder", "1")][0] == 209


def test_a_call_based_problem_names_the_function_its_tests_call():
    """APPS 4184's statement never says is_prime; its starter code does, and is shown with it (as
    LiveCodeBench's eval shows a starter); a call-based row without one gets the name in a line."""
    rows = {(r["source"], r["source_id"]): r for name in ("apps", "lcb") for r in _mapped(name)}
    assert "is_prime" not in RAW["apps"]()[-1]["question"]
    assert rows[("apps", "4184")]["problem"].endswith(
        "Complete this starter code:\n```python\ndef is_prime(n):\n```"
    )
    assert "def minimumOperations(self, num: str) -> int:" in rows[("lcb", "3046")]["problem"]
    assert "starter code" not in rows[("lcb", "1873_A")]["problem"]  # stdin: nothing to name
    bare = _map(
        SOURCES["taco"],
        {"question": "Add.", "input_output": '{"fn_name": "add", "inputs": [[1, 2]], "outputs": [3]}'},
        0,
    )
    assert bare["problem"] == "Add.\n\nWrite it as a Python function named `add`."


def test_codewars_outputs_wrapped_in_a_list_are_unwrapped_and_leetcodes_are_not():
    io = json.loads((CODE / "apps_original_layout/train/4184/input_output.json").read_text())
    tests, name = convert("io", io)
    assert name == "is_prime" and [t["output"] for t in tests][:3] == ["false", "true", "true"]
    assert tests[0]["input"] == "1"
    leet, _ = convert("io", (CODE / "apps_original_layout/train/2404/input_output.json").read_text())
    assert leet == [{"testtype": "functional", "input": "[2, 3, 4, 7, 11]\n5", "output": "9"}]


@pytest.mark.parametrize(
    "layout, tests, fn_name, message",
    [
        ("io", '{"inputs": ["1"], "outputs": []}', None, "1 inputs but 0 outputs"),
        ("io", "{oops", None, "input_output is not JSON"),
        ("lcb", '[{"input": "1"}]', None, "needs 'input' and 'output'"),
        ("lcb", '[{"input": "1", "output": "2", "testtype": "functional"}]', "{}", "no function name"),
        ("deepcoder", '[{"type": "function_call", "input": "1", "output": "2"}]', None, "only stdin_stdout"),
        ("lcb", "eJx-not-base64", None, "neither JSON nor LiveCodeBench's compressed form"),
    ],
)
def test_tests_that_cannot_be_read_say_why(layout, tests, fn_name, message):
    with pytest.raises(ValueError, match=message):
        convert(layout, tests, fn_name)


def test_a_code_row_meets_the_code_rules_only():
    """Math rules (no_answer, multiple_choice, multi_part, ...) would drop every code row (no answer,
    "(1)" in a statement); a code row is tried by no_tests first, then by the code rules listed."""
    names = ["where", "empty_problem", "no_answer", "multiple_choice", "multi_part", "too_long"]
    row = _mapped("deepcoder")[0]
    assert first_failed(row, names, FilterLimits(max_problem_chars=10_000)) is None
    broken = {**row, "tests": '[{"input": "1"}]'}
    assert first_failed(broken, names, FilterLimits(max_problem_chars=10_000))[0] == "no_tests"
    unread = {k: v for k, v in row.items() if k != "tests"} | {"tests_error": "input_output is not JSON"}
    assert first_failed(unread, [], FilterLimits()) == ("no_tests", "tests: input_output is not JSON")


@needs_sandbox
@pytest.mark.slow
def test_reference_solutions_pass_the_converted_tests_and_a_wrong_program_fails():
    items = []  # (name, id, program, tests, fn_name, expected score)
    for name in ("apps", "deepcoder", "lcb"):
        for row in _mapped(name):
            solution = (
                LCB_SOLUTIONS.get(row["source_id"]) if name == "lcb" else (row.get("solutions") or [None])[0]
            )
            if solution is None:
                continue  # TACO's and one DeepCoder row: no solution shipped
            items.append((name, row["source_id"], solution, row["tests"], row["fn_name"], 1.0))
            items.append((name, row["source_id"], WRONG, row["tests"], row["fn_name"], 0.0))
    assert {(n, i) for n, i, *_ in items} >= {
        ("apps", "2404"),
        ("apps", "4184"),
        ("lcb", "3046"),
        ("deepcoder", "0"),
    }
    reward = get_reward("code_tests", max_concurrency=2, test_seconds=6)
    scores = reward([i[2] for i in items], tests=[i[3] for i in items], fn_name=[i[4] for i in items])
    assert reward.last.counts["scored"] == len(items)
    assert {(n, i, e): s for (n, i, _, _, _, e), s in zip(items, scores, strict=True)} == {
        (n, i, e): e for n, i, _, _, _, e in items
    }


@pytest.mark.slow
def test_a_build_from_code_sources_carries_tests_to_every_code_row(tmp_path):
    """The corpus fixtures' recipe plus the code sources (written as local JSON Lines files in their
    published layouts), decontaminated against LiveCodeBench's problems (data.build.decontaminate_files;
    the lcb_v5 benchmark's date window holds neither fixture row): the LiveCodeBench rows given as a
    source too are caught as copies; every other code row reaches a split with its
    tests and no answer; the card counts code per domain."""
    from ssp.launch.runner import run_pipeline

    fix = CODE.parent
    files = {}
    for name in ("apps", "deepcoder", "lcb"):
        files[name] = tmp_path / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps(r) + "\n" for r in RAW[name]()))
    lcb_problems = [{"id": r["question_id"], "problem": r["question_content"]} for r in RAW["lcb"]()]
    (tmp_path / "lcb_problems.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lcb_problems))
    recipe = load_recipe(
        Path(__file__).parents[1] / "recipes" / "corpus_fixtures.yaml",
        [
            f"output_root={tmp_path}",
            f"data.sources[0].path={fix / 'numinamath_1p5.jsonl'}",
            f"data.sources[1].path={fix / 'math_hendrycks.jsonl'}",
            "data.domains=[algebra, geometry, calculus, statistics, code]",
            f"eval.benchmarks[0].source={fix / 'math500.jsonl'}",
            f"eval.benchmarks[1].source={fix / 'aime24.jsonl'}",
            "data.build.max_problem_chars=6000",
            f"data.build.decontaminate_files={{lcb: {tmp_path / 'lcb_problems.jsonl'}}}",
        ],
    )
    for name in ("apps", "deepcoder", "lcb"):
        src = SOURCES[name]
        recipe.data.sources.append(Source(**{**src.__dict__, "path": str(files[name])}))
    run_pipeline(recipe)
    data = recipe.run_dir / "data"
    files = [data / f"{s}.jsonl" for s in ("eval", "rl", "sft") if (data / f"{s}.jsonl").exists()]
    files += sorted(data.glob("probe/*.jsonl"))
    splits = {p.relative_to(data).as_posix(): list(iter_jsonl(p)) for p in files}
    code = [(s, r) for s, rows in splits.items() for r in rows if r["domain"] == "code"]
    assert {r["source"] for _, r in code} == {"apps", "deepcoder"}
    assert len(code) == 5 + 2
    for split, row in code:
        assert json.loads(row["tests"]) and not row["answer"], (split, row["id"])
    math = [r for rows in splits.values() for r in rows if r["domain"] != "code"]
    assert math and all(r["answer"] and r["tests"] is None for r in math)
    card = json.loads((data / "data_card.json").read_text())
    assert sum(c.get("code", 0) for c in card["splits"].values()) == 7
    assert card["sources"]["lcb"]["contaminated"] == 2
    assert card["decontamination"]["benchmarks"]["lcb"]["problems"] == 2


@needs_sandbox
@pytest.mark.slow
def test_per_domain_rewards_in_probing_and_teacher_sampling(tmp_path):
    """A scripted model answers every prompt with either a program printing 7 or ``\\boxed{7}``; on
    math rows (gold 7) and code rows (a test expecting 7) the ``by_domain`` reward must score the
    box 1 on math and 0 on code, the program the other way round: computed here from each
    sample's own text, for the probe's sampler (ModelSampler) and the teacher's shards."""
    from ssp.data_pipeline.teacher import sample_shards, sampled_rows
    from ssp.reward.config import RewardSpec
    from ssp.sampling.generation import GenerationConfig, SamplingParams
    from ssp.sampling.scoring import Engine, sample_and_score

    from .helpers.scripted_model import build_scripted_model

    program, box = "```python\nprint(7)\n```", "\\boxed{7}"
    model = build_scripted_model(tmp_path / "m", p=0.5, completions=(program, box))
    tests = json.dumps([{"testtype": "stdin", "input": "", "output": "7\n"}])
    rows = [
        {"id": f"a{i}", "domain": "algebra", "problem": f"Q{i}", "answer": "7", "tests": None}
        for i in range(3)
    ]
    rows += [
        {"id": f"c{i}", "domain": "code", "problem": f"P{i}", "answer": "", "tests": tests} for i in range(3)
    ]
    spec = RewardSpec(
        name="by_domain",
        options={
            "domains": {"code": {"name": "code_tests", "options": {"test_seconds": 3}}},
            "default": "math_correctness",
        },
    )
    reward = get_reward(spec.name, **spec.options)

    def expected(row, text):
        return float(text == (program if row["domain"] == "code" else box))

    params = SamplingParams(n=6, temperature=1.0, max_new_tokens=4, seed=1)
    engine = Engine(GenerationConfig(backend="hf"), batch_size=16)
    try:
        flat, scores, _, report = sample_and_score(engine.on(str(model)), rows, reward, params, "probe")
        want = [
            expected(r, c.text)
            for r, o in zip(rows, [flat[i * 6 : (i + 1) * 6] for i in range(6)], strict=True)
            for c in o
        ]
        assert scores == want and set(want) == {0.0, 1.0}
        shards = sample_shards(
            rows, tmp_path / "teacher", lambda: engine.on(str(model)), reward, params, 4, "scripted"
        )
        for row, samples in sampled_rows(shards, rows):
            assert [s["score"] for s in samples] == [expected(row, s["text"]) for s in samples], row["id"]
    finally:
        engine.close()
        reward.close()
