"""Corpus files: bad input fails naming file, row and field; decontamination drops shared n-grams."""

import json
from pathlib import Path

import pytest

from ssp.core.corpus import PROBLEM_FIELDS, SFT_FIELDS, load_rows, sft_examples, write_rows
from ssp.core.errors import DataError
from ssp.data_pipeline.decontaminate import Decontaminator


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


GOOD = {
    "id": "1",
    "domain": "algebra",
    "problem": "Solve x + 1 = 2.",
    "answer": "1",
    "solutions": ["x = 2 - 1 = 1. \\boxed{1}", "Try x = 1: 1 + 1 = 2. \\boxed{1}"],
}


def test_round_trip(tmp_path):
    path = write_rows([GOOD, {**GOOD, "id": "2"}], tmp_path / "sft.jsonl")
    rows = load_rows(path, SFT_FIELDS, "sft")
    assert rows[1]["id"] == "2" and rows[0]["solutions"] == GOOD["solutions"]
    assert not list(tmp_path.glob("*.tmp")), "temporary file left behind"


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"sft split: file not found: .*nope\.jsonl"):
        load_rows(tmp_path / "nope.jsonl", SFT_FIELDS, "sft")


@pytest.mark.parametrize("field", ["problem", "answer", "solutions"])
def test_row_missing_a_field_names_file_row_and_field(tmp_path, field):
    bad = {k: v for k, v in GOOD.items() if k != field}
    path = _jsonl(tmp_path / "sft.jsonl", [GOOD, {**GOOD, "id": "2"}, {**bad, "id": "3"}])
    with pytest.raises(DataError) as info:
        load_rows(path, SFT_FIELDS, "sft")
    assert f"{path}: row 3: field {field!r} is missing or empty" in str(info.value)


def test_empty_solution_string_is_rejected(tmp_path):
    path = _jsonl(tmp_path / "sft.jsonl", [{**GOOD, "solutions": ["ok \\boxed{1}", " "]}])
    with pytest.raises(DataError, match="row 1: field 'solutions' must be a list of non-empty strings"):
        load_rows(path, SFT_FIELDS, "sft")


def test_empty_split_is_named(tmp_path):
    path = tmp_path / "eval.jsonl"
    path.write_text("")
    with pytest.raises(DataError, match=r"eval split is empty"):
        load_rows(path, PROBLEM_FIELDS, "eval")


def test_unreadable_file_is_named(tmp_path):
    path = tmp_path / "eval.jsonl"
    path.write_text('{"id": 1, "problem": \n')
    with pytest.raises(DataError, match=r"eval\.jsonl: cannot be read as json"):
        load_rows(path, PROBLEM_FIELDS, "eval")


def test_malformed_jsonl_line_is_named_one_based(tmp_path):
    """datasets says only "An error occurred while generating the dataset"; the error must name
    the file and the 1-based line (here the 3rd line; the 2nd is blank)."""
    path = tmp_path / "sft.jsonl"
    path.write_text(
        json.dumps(GOOD) + "\n\n" + '{"id": "2", "problem": "x" "answer": "1"}\n' + json.dumps(GOOD) + "\n"
    )
    with pytest.raises(DataError, match=r"sft\.jsonl: cannot be read as json: line 3: not valid JSON"):
        load_rows(path, SFT_FIELDS, "sft")


def test_non_utf8_bytes_are_named_by_their_line(tmp_path):
    """A Latin-1 byte on line 2 (issue 29: it was reported without a line)."""
    path = tmp_path / "sft.jsonl"
    good = json.dumps(GOOD).encode()
    path.write_bytes(good + b"\n" + good.replace(b"Solve", b"R\xe9solve") + b"\n")
    with pytest.raises(DataError, match=r"sft\.jsonl: cannot be read as json: line 2: not UTF-8 \(byte 0xe9"):
        load_rows(path, SFT_FIELDS, "sft")


def test_missing_file_names_the_recipe_key(tmp_path):
    with pytest.raises(DataError, match=r"^data\.train_file: file not found: .*nope\.jsonl"):
        load_rows(tmp_path / "nope.jsonl", SFT_FIELDS, "sft", key="data.train_file")


def test_duplicate_ids_are_an_error(tmp_path):
    path = _jsonl(tmp_path / "sft.jsonl", [GOOD, {**GOOD, "id": "2"}, {**GOOD, "problem": "Other."}])
    with pytest.raises(DataError, match=r"sft\.jsonl: rows 1 and 3 have the same id '1'"):
        load_rows(path, SFT_FIELDS, "sft")


def test_domain_outside_the_recipe_is_an_error(tmp_path):
    path = _jsonl(tmp_path / "sft.jsonl", [GOOD, {**GOOD, "id": "2", "domain": "topology"}])
    with pytest.raises(DataError, match=r"row 2: domain 'topology' is not one of the recipe's data\.domains"):
        load_rows(path, SFT_FIELDS, "sft", key="data.train_file", domains={"algebra", "geometry"})


def test_probe_file_with_another_domains_rows_is_an_error(tmp_path):
    rows = [
        {k: GOOD[k] for k in PROBLEM_FIELDS},
        {"id": "2", "domain": "geometry", "problem": "p", "answer": "1"},
    ]
    path = _jsonl(tmp_path / "algebra.jsonl", rows)
    with pytest.raises(DataError, match=r"row 2: domain 'geometry' is not this probing set's \('algebra'\)"):
        load_rows(path, PROBLEM_FIELDS, "probe/algebra", key="data.probe_files.algebra", domains={"algebra"})


def test_parquet_is_accepted(tmp_path):
    import datasets

    path = tmp_path / "eval.parquet"
    datasets.Dataset.from_list([{k: GOOD[k] for k in PROBLEM_FIELDS}]).to_parquet(str(path))
    assert load_rows(path, PROBLEM_FIELDS, "eval")[0]["answer"] == "1"


def test_sft_examples_one_per_solution():
    ex = sft_examples([GOOD], suffix="Think.")
    assert len(ex) == 2
    assert ex[0]["prompt"] == [{"role": "user", "content": "Solve x + 1 = 2. Think."}]
    assert ex[1]["completion"][0]["content"] == GOOD["solutions"][1]


def _deco(texts, n=10, similarity=0.0):
    d = Decontaminator(n, similarity)
    for i, t in enumerate(texts):
        d.add("bench", str(i), t)
    return d


def test_decontamination_catches_whole_copies_not_shared_phrases():
    d = _deco(["Let ABC be a triangle with sides 3, 4 and 5; find its area in square units."])
    assert (
        d.match("let abc be a TRIANGLE with sides 3 4 and 5 find its area in square units").rule == "verbatim"
    )
    assert d.match("Let ABC be a triangle with sides 6, 8 and 10; find its area in square units.").rule == (
        "numbers"
    )
    assert (
        d.match(
            "Warm up. Let ABC be a triangle with sides 3, 4 and 5; find its area in square units. Then rest."
        ).rule
        == "verbatim"
    )  # embedded in a longer text
    # the same set-up asking something else is another problem (the report's 10-gram rule dropped it)
    assert not d.contaminated("Let ABC be a triangle with sides 3, 4 and 5; find its inradius.")
    short = _deco(["What is 2 + 2?"])  # short problems: whole copies only, numbers changed included
    assert short.match("what is 2+2").rule == "verbatim"
    assert short.match("What is 7 + 3?").rule == "numbers"
    assert not short.contaminated("What is 2 - 3?")  # another operation
    assert not short.contaminated("Quick: what is 2 + 2? Then say why the sum of two odd numbers is even.")


def test_a_shared_figure_is_not_a_shared_problem():
    """Figure code is drawing, not wording: its many numbers must not make two questions one."""
    figure = '[asy] draw((0,0)--(3,7)--(11,13)--(17,19)); label("$23$",(29,31)); dot((41,43)); [/asy]'
    d = _deco([f"The graph of $y = f(x)$ is shown below. {figure} What is $f(3)$?"], similarity=1.15)
    d.fit(["What is $f(2)$?", "How many roots does it have?", "Find the period.", figure])
    assert not d.contaminated(f"Here is the graph of a function. {figure} Is its value at 3 positive?")
    assert d.match(f"THE GRAPH of $y=f(x)$ is shown below. {figure} What is $f(3)$?").rule == "verbatim"


REAL_FILTER_CASES = [
    json.loads(line)
    for line in (Path(__file__).parent / "fixtures" / "corpus" / "math_filter_cases.jsonl")
    .read_text()
    .splitlines()
]


@pytest.mark.parametrize("case", REAL_FILTER_CASES, ids=[c["id"] for c in REAL_FILTER_CASES])
def test_filters_on_real_math_rows(case):
    """Real MATH problems (SOURCES in tests/fixtures/decontamination/SOURCES.md) on which the filters
    were wrong before: long gradable matrix answers, "the census show that", conditions (i)-(iii),
    "the image of M", tables "shown", [asy] problems stated in text; and real drops they must keep."""
    from ssp.data_pipeline.build import DEFAULT_FILTERS
    from ssp.data_pipeline.filters import Limits, first_failed
    from ssp.reward.math_answer import extract_boxed

    row = {
        "problem": case["problem"],
        "solution": case["solution"],
        "answer": extract_boxed(case["solution"]),
    }
    failed = first_failed(row, DEFAULT_FILTERS, Limits())
    assert (failed[0] if failed else "keep") == case["expect"], (case["why"], failed)


@pytest.mark.parametrize(
    ("problem", "dropped"),
    [
        (
            "(1) Find the general term of the sequence $\\{a_n\\}$; (2) Find the sum of its first $n$ terms.",
            True,
        ),
        ("Given $f(x)=x^2-2x$.\n(I) Solve $f(x)>3$;\n(II) Find the minimum of $f$ on $[0,3]$.", True),
        ("(a) What is $2+3$? (b) What is $2 \\cdot 3$?", True),
        ("Let $f$ satisfy (i) $f(1)=1$ and (ii) $f(x+y)=f(x)+f(y)$. Find $f(5)$.", False),
        ("Which is largest? (A) $2^{10}$ (B) $10^2$ (C) $3^5$", False),  # options, not parts
        ("Points (1) and (2) on the line are 3 apart. Find the distance from (1) to the origin.", False),
    ],
)
def test_multi_part_needs_parts_that_each_ask(problem, dropped):
    from ssp.data_pipeline.filters import RULES, Limits

    assert bool(RULES["multi_part"]({"problem": problem}, Limits())) is dropped


def test_multi_part_on_real_problems_that_ask_in_parts_or_only_look_it():
    """109 real problems labelled by hand (tests/fixtures/corpus/multi_part_real.jsonl, sources in
    layouts/SOURCES.md): 63 that ask two or more things ("(1) Find p; (2) ...", "Solve the equations:
    (1) ...; (2) ..."), 46 that carry part-like marks but ask one thing (conditions (a)-(c), numbered
    steps, options (A)-(E)). Measured 2026-12-04: 57 of 58 drops right, 57 of 63 multi-part caught
    (missed: questions with no asking word in any part, p1..p5 bundles, two asks with no marks)."""
    from ssp.data_pipeline.filters import multi_part

    rows = [
        json.loads(line)
        for line in (Path(__file__).parent / "fixtures" / "corpus" / "multi_part_real.jsonl")
        .read_text()
        .splitlines()
    ]
    dropped = [r for r in rows if multi_part({"problem": r["problem"]}, None)]
    right = sum(r["multi"] for r in dropped)
    assert right / len(dropped) >= 0.95, [r["why"] for r in dropped if not r["multi"]]
    assert right / sum(r["multi"] for r in rows) >= 0.9
