"""Bad input found after the data stage started (issue 29): each is one DataError line naming the
recipe key, the file and the 1-based line or row, raised before any long work where it can be.
Every case is a real file written here: JSON Lines by hand, Parquet by ``datasets``/pyarrow and
truncated by cutting its bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssp.core.errors import DataError
from ssp.data_pipeline.sources import Source, read_source

ROWS = [{"problem": f"What is {i} + 1?", "answer": str(i + 1), "type": "Algebra"} for i in range(6)]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _parquet(path: Path, rows: list[dict]) -> Path:
    import datasets

    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    return path


def _read(path: Path, **fields) -> list[dict]:
    return list(read_source(Source(name="s", path=str(path), fields=fields), "data.sources[2]"))


def test_an_empty_source_file_is_named(tmp_path):
    """Was: RuntimeError: generator raised StopIteration."""
    for name in ("empty.jsonl", "empty.parquet"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(
            DataError, match=rf"^data.sources\[2\]: source 's': {tmp_path}/{name}: empty file \(0 bytes\)"
        ):
            _read(tmp_path / name)
    (tmp_path / "blank.jsonl").write_text("\n \n")  # was: no error, a source of 0 rows
    with pytest.raises(DataError, match=r"^data.sources\[2\]: source 's': .*blank.jsonl: no rows"):
        _read(tmp_path / "blank.jsonl")


def test_a_truncated_parquet_file_is_named(tmp_path):
    """Was: ArrowInvalid: Parquet magic bytes not found (naming no file, no recipe key); in a folder
    in the hub's layout, the second of two files."""
    whole = _parquet(tmp_path / "whole.parquet", ROWS).read_bytes()
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(whole[: len(whole) - 40])
    with pytest.raises(
        DataError, match=r"^data.sources\[2\]: source 's': .*/cut.parquet: not a readable Parquet file"
    ):
        _read(cut)
    folder = tmp_path / "hub"
    _parquet(folder / "data" / "train-00000-of-00002.parquet", ROWS)
    (folder / "data" / "train-00001-of-00002.parquet").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"source 's': .*/data/train-00001-of-00002.parquet: not a readable"):
        _read(folder)


def test_bytes_that_are_not_utf8_are_named_by_line(tmp_path):
    """Was: "cannot be read: 'utf-8' codec can't decode byte 0xe9", no line."""
    bad = tmp_path / "latin1.jsonl"
    lines = [json.dumps(r).encode() for r in ROWS]
    lines[3] = '{"problem": "Caf\u00e9 costs 3; what is 2 + 3?", "answer": "5"}'.encode("latin-1")
    bad.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(
        DataError,
        match=r"^data.sources\[2\]: source 's': .*/latin1.jsonl: line 4: not UTF-8 \(byte 0xe9",
    ):
        _read(bad)


def test_line_and_row_numbers_are_1_based(tmp_path):
    """Was, for a JSON Lines file in a folder in the hub's layout: "cannot be read: JSON parse
    error: Missing a name for object member. in row 3" (pyarrow's 0-based row of line 4)."""
    folder = tmp_path / "hub"
    (folder / "data").mkdir(parents=True)
    lines = [json.dumps(r) for r in ROWS]
    lines[3] = '{"problem": "What is 4 + 1?", '
    (folder / "data" / "train-00000-of-00001.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        _read(folder)
    assert "train-00000-of-00001.jsonl: line 4: not valid JSON" in str(err.value)
    assert str(err.value).startswith("data.sources[2]: source 's': ") and "row 3" not in str(err.value)
    # a duplicate id in a Parquet file: rows counted from 1, and said so
    dup = _parquet(tmp_path / "dup.parquet", [{**r, "id": f"q{min(i, 2)}"} for i, r in enumerate(ROWS)])
    with pytest.raises(
        DataError,
        match=r"id 'q2' \(column 'id'\) appears twice: .*dup.parquet: row 3 \(1-based\) and .*row 4 \(1-based\)",
    ):
        _read(dup, id="id")


def test_a_mapped_column_missing_from_later_rows_only_is_an_error(tmp_path):
    """Was: the rows without it were read with the column empty and sent on (here to the label
    classifier, as unlabelled)."""
    rows = [dict(r) for r in ROWS]
    del rows[4]["type"]
    with pytest.raises(
        DataError,
        match=r"^data.sources\[2\]: source 's': .*/later.jsonl: line 5: column\(s\) \['type'\] \(fields.label\) "
        r"missing; the source's first row has them \(.*later.jsonl: line 1\)",
    ):
        _read(_jsonl(tmp_path / "later.jsonl", rows), label="type")
    # a null is a value (no label: the classifier's), not a missing column
    rows[4]["type"] = None
    assert _read(_jsonl(tmp_path / "null.jsonl", rows), label="type")[4]["source_label"] == ""
    # Parquet in the hub's layout: the second file has no such column
    folder = tmp_path / "hub"
    _parquet(folder / "data" / "train-00000-of-00002.parquet", ROWS)
    _parquet(folder / "data" / "train-00001-of-00002.parquet", [{"problem": "x", "answer": "1"}])
    with pytest.raises(
        DataError,
        match=r"^data.sources\[2\]: source 's': column\(s\) \['type'\] \(fields.label\) missing from "
        r".*train-00001-of-00002.parquet \(rows 1-1, 1-based\)",
    ):
        _read(folder, label="type")


def test_the_build_checks_every_source_file_before_reading_the_first(tmp_path):
    """A truncated file in the second source stops the build before the first source is read."""
    from ssp.data_pipeline.build import BuildOptions, Plan, build_pool

    good = _jsonl(tmp_path / "good.jsonl", ROWS)
    whole = _parquet(tmp_path / "whole.parquet", ROWS).read_bytes()
    (tmp_path / "cut.parquet").write_bytes(whole[:-40])
    plan = Plan(
        sources=[Source(name="a", path=str(good)), Source(name="b", path=str(tmp_path / "cut.parquet"))],
        options=BuildOptions(),
        domains=["algebra"],
        sizes={},
        sft_cap=0,
        seed=0,
        benchmarks={},
    )
    with pytest.raises(DataError, match=r"^data.sources\[1\]: source 'b': .*cut.parquet: not a readable"):
        build_pool(plan, tmp_path / "data", "fp")
    assert not (tmp_path / "data" / "build" / "ingest" / "a.jsonl").exists()
