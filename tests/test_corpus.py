"""Corpus files: bad input fails naming file, row and field; decontamination drops shared n-grams."""

import json

import pytest

from core.corpus import PROBLEM_FIELDS, SFT_FIELDS, load_rows, sft_examples, write_rows
from core.errors import DataError
from data_pipeline.decontaminate import Decontaminator


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
    path = _jsonl(tmp_path / "sft.jsonl", [GOOD, GOOD, bad])
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


def test_decontamination_ngrams():
    d = Decontaminator(["Let ABC be a triangle with sides 3, 4 and 5; find its area in square units."], n=10)
    assert d.contaminated(
        "let abc be a TRIANGLE with sides 3 4 and 5 find its inradius"
    )  # normalised 10-gram
    assert not d.contaminated("Let ABC be a triangle with sides 5, 12 and 13; find its area.")
    short = Decontaminator(["What is 2 + 2?"], n=10)  # shorter than n: whole sequence
    assert short.contaminated("Quick: what is 2 + 2? Answer fast.")
    assert not short.contaminated("What is 2 + 3?")
