"""Problem sources: public problem sets and local copies of them, read one row at a time.

    sources:
      - name: numina
        path: AI-MO/NuminaMath-1.5          # hub id, or a local .jsonl/.json/.parquet file or folder
        fields: {problem: problem, answer: answer, solution: solution, label: problem_type,
                 question_type: question_type}
        where: {problem_is_valid: "Yes"}
        label_map: {Algebra: algebra, Inequalities: algebra, Geometry: geometry, Calculus: calculus}
        licence: Apache-2.0

A hub id is read with ``datasets.load_dataset(..., streaming=True)``. A local source is read here,
file by file: a local file, or the split's files of a folder in the hub's layout (``data/
train-*.parquet``) as ``datasets`` resolves them; JSON Lines line by line (strict JSON and UTF-8),
Parquet with pyarrow (the mapped columns only). Either way a million-row set is never held in
memory. Each row becomes

    uid, source, source_id, problem, answer[, solution, source_label, question_type]

``source_id`` is the source's own id column where ``fields.id`` names one, otherwise the row's
0-based position in the split (stable for a fixed revision of the data).

Bad input is a DataError of one line naming the recipe key (``data.sources[2]``), the source, the
file and the 1-based line (JSON Lines) or row (Parquet, "row N (1-based)"). Found before any row
is read (``check_source``, which the build runs on every source before reading the first): an
empty file, a Parquet file that does not open (truncated: no footer), a Parquet file without a
mapped column, a JSON Lines file with bytes that are not UTF-8. Found at the row: a line that is not
one JSON object, a mapped or ``where`` column missing from a row when the first row has it (a
null is a value: an empty field, as before), a duplicate id (both places), a source with no rows.
Through ``datasets`` (a hub id) a column missing from some rows reads as null: not told apart.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ssp.core.corpus import FILE_KINDS, bad_json_line, decoded_line
from ssp.core.errors import DataError, check
from ssp.core.references import looks_local
from ssp.data_pipeline.code_layouts import LAYOUTS, convert
from ssp.reward.math_answer import extract_boxed

ROLES = ("problem", "answer", "solution", "label", "id", "question_type", "tests", "fn_name", "starter_code")
"""What a source's columns can be mapped to (``fields: {role: column}``)."""


@dataclass
class Source:
    """One public problem set (or a local file in its layout)."""

    name: str = ""
    """Short name: the rows' provenance ('source' field) and the key of the card's per-source rows."""
    path: str = ""
    """Hub dataset id, or a local .jsonl/.json/.parquet file, or a folder in the hub's layout."""
    subset: str = ""
    """Hub configuration (e.g. 'algebra' for EleutherAI/hendrycks_math); empty = the default one."""
    split: str = "train"
    fields: dict[str, str] = field(default_factory=dict)
    """{role: column}; roles: problem, answer, solution, label, id, question_type, tests, fn_name,
    starter_code (a code problem's stub, appended to the problem as LiveCodeBench's eval does).
    Unmapped, problem reads column 'problem' and answer column 'answer' (unless answer_from_solution
    or tests: a code source's rows are graded by their tests)."""
    tests_layout: str = ""
    """How fields.tests stores a code problem's tests: lcb (LiveCodeBench public_test_cases, with
    fields.fn_name: metadata), io (APPS / TACO input_output) or deepcoder (DeepCoder's tests);
    data_pipeline/code_layouts.py."""
    more_tests: list[str] = field(default_factory=list)
    """Columns with further tests in the tests_layout lcb (LiveCodeBench's private_test_cases)."""
    domain: str = ""
    """Every row's domain (e.g. code for a code source), instead of labels or the classifier."""
    answer_from_solution: bool = False
    """Take the answer from the last \\boxed{} of the solution column (MATH has no answer column)."""
    label_map: dict[str, str | None] = field(default_factory=dict)
    """The source's own label -> a recipe domain; null = outside the recipe's domains (dropped,
    counted). A label not listed goes to the classifier like an unlabelled row."""
    where: dict[str, str] = field(default_factory=dict)
    """Keep only rows whose column equals the value (NuminaMath-1.5: {problem_is_valid: 'Yes'})."""
    solution_columns: list[str] = field(default_factory=list)
    """Columns holding several solutions per problem, used for SFT without a teacher: each column one
    solution (DeepMath-103K: r1_solution_1..3) or a list of them (OpenR1-Math-220k: generations). A
    trace closed by </think> but never opened gets its <think> (DeepMath stores them so); a trace with
    an unclosed <think> is no solution. The build keeps up to data.teacher.solutions_per_problem of
    them, chosen by data.teacher.selection (the diversity rule)."""
    solutions_verified: str = ""
    """A column of booleans parallel to a list column of solution_columns (OpenR1-Math-220k:
    correctness_math_verify): only the solutions marked true are kept. Without it, every finished one
    is kept: map it wherever the source has one."""
    licence: str = ""
    """The source's licence, copied into the data card."""
    limit: int = 0
    """Read only the first N rows (0 = all): for trials, never for a corpus you train on."""

    def __post_init__(self):
        check(self, "name", bool(self.name) and "/" not in self.name, "must be a short name without '/'")
        check(self, "path", bool(self.path), "is required (a hub dataset id or a local file or folder)")
        self.fields = dict(self.fields)
        self.fields.setdefault("problem", "problem")
        if not self.answer_from_solution and not self.fields.get("tests"):
            self.fields.setdefault("answer", "answer")
        if self.domain:
            check(self, "domain", not self.fields.get("label"), "a source with a domain maps no label column")
            self.label_map = {self.domain: self.domain}
        unknown = sorted(set(self.fields) - set(ROLES))
        check(self, "fields", not unknown, f"unknown roles {unknown}; known: {list(ROLES)}")
        check(self, "fields", bool(self.fields.get("problem")), "must map 'problem' to a column")
        check(
            self,
            "fields",
            bool(self.fields.get("answer"))
            or bool(self.fields.get("tests"))
            or (self.answer_from_solution and bool(self.fields.get("solution"))),
            "must map 'answer', 'tests' (a code source), or 'solution' with answer_from_solution: true",
        )
        if self.fields.get("tests"):
            check(
                self,
                "tests_layout",
                self.tests_layout in LAYOUTS,
                f"must say how fields.tests is stored: one of {list(LAYOUTS)}, got {self.tests_layout!r}",
            )
        check(
            self,
            "more_tests",
            not self.more_tests or self.tests_layout == "lcb",
            "is read in the lcb tests_layout only (LiveCodeBench's private_test_cases)",
        )
        check(self, "limit", self.limit >= 0, "must be >= 0")
        check(
            self,
            "solutions_verified",
            not self.solutions_verified or len(self.solution_columns) == 1,
            "needs exactly one solution_columns entry (the list column it marks)",
        )


def _open(src: Source, key: str):
    """A ``datasets`` stream of a source this module does not read itself (a hub id; a local file
    or folder of another kind)."""
    import datasets

    path = Path(src.path).expanduser()
    if looks_local(src.path):
        if path.is_file():
            return datasets.load_dataset(
                FILE_KINDS[path.suffix], data_files=str(path), split="train", streaming=True
            )
        return datasets.load_dataset(str(path), name=src.subset or None, split=src.split, streaming=True)
    try:
        return datasets.load_dataset(src.path, name=src.subset or None, split=src.split, streaming=True)
    except Exception as err:
        raise DataError(
            f"{key}: source {src.name!r}: cannot open hub dataset {src.path!r} (subset {src.subset!r}, "
            f"split {src.split!r}): {err}. Without a hub connection, point path at a local copy "
            f"(a folder in the hub's layout or a .jsonl/.parquet file)."
        ) from None


def local_files(src: Source, key: str) -> list[Path] | None:
    """The files of a local source in reading order: the file itself, or the split's files of a
    folder in the hub's layout as ``datasets`` resolves them (subset, split); None for a hub id and
    for a folder holding files of other kinds (read through ``datasets``)."""
    if not looks_local(src.path):
        return None
    path = Path(src.path).expanduser()
    if not path.exists():
        raise DataError(f"{key}.path: source {src.name!r}: file or folder not found: {path}")
    if path.is_file():
        if path.suffix not in FILE_KINDS:
            raise DataError(
                f"{key}.path: {path}: unsupported file type {path.suffix!r} (.jsonl, .json, .parquet)"
            )
        return [path]
    import datasets

    try:
        found = datasets.load_dataset_builder(str(path), name=src.subset or None).config.data_files or {}
    except Exception as err:  # noqa: BLE001 - datasets raises a zoo of types for a folder it cannot read
        raise DataError(
            f"{key}: source {src.name!r}: {path}: not a folder in the hub's layout "
            f"(subset {src.subset!r}): {err}"
        ) from None
    if src.split not in found:
        raise DataError(
            f"{key}.split: source {src.name!r}: {path} has no split {src.split!r}; its splits: {sorted(found)}"
        )
    files = [Path(f) for f in found[src.split]]
    return files if all(f.suffix in FILE_KINDS for f in files) else None


def _wanted(src: Source) -> dict[str, str]:
    """{column: the recipe key that names it} of every column a row must have: a misspelt one fails
    naming its key, never reads as empty."""
    return {
        **{c: f"fields.{r}" for r, c in src.fields.items() if c},
        **{c: "where" for c in src.where},
        **{c: "more_tests" for c in src.more_tests},
    }


def _read_columns(src: Source) -> list[str]:
    """The columns a local Parquet file is read for: the wanted ones, and the solution columns a row
    may lack (a mixed JSON Lines source: DeepCoder's subsets), which a Parquet read once left out."""
    extra = [*src.solution_columns, *([src.solutions_verified] if src.solutions_verified else [])]
    return list(dict.fromkeys([*_wanted(src), *extra]))


def _is_json_lines(path: Path) -> bool:
    """A .jsonl file, or a .json file whose first line is a JSON object (not one JSON document)."""
    if path.suffix == ".jsonl":
        return True
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                try:
                    return isinstance(json.loads(line.decode("utf-8-sig")), dict)
                except ValueError:  # UnicodeDecodeError is one
                    return False
    return True


def check_source(src: Source, key: str) -> None:
    """What can be checked before any row is read, in seconds: every file of a local source is
    there and not empty, every Parquet file opens (footer) and holds every mapped column, every
    JSON Lines file is UTF-8. A DataError names the recipe key, the file and the line or row."""
    files = local_files(src, key)
    for file in files or []:
        _check_file(src, key, file, first=file == files[0])
        if file.suffix != ".parquet" and _is_json_lines(file):
            _check_utf8(src, key, file)


def _check_file(src: Source, key: str, file: Path, first: bool):
    """The cheap checks of one file (size; a Parquet file's footer and columns); returns the
    opened ``pyarrow.parquet.ParquetFile`` of a Parquet file."""
    where = f"{key}: source {src.name!r}: {file}"
    if file.stat().st_size == 0:
        raise DataError(f"{where}: empty file (0 bytes): no rows")
    if file.suffix != ".parquet":
        return None
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(file)
    except Exception as err:  # noqa: BLE001 - pyarrow's ArrowInvalid, OSError, ...
        raise DataError(
            f"{where}: not a readable Parquet file ({err}); truncated or not Parquet: copy it again"
        ) from None
    columns = parquet.schema_arrow.names
    wanted = {**{c: "solution_columns" for c in _read_columns(src)}, **_wanted(src)}  # every row has all
    missing = sorted(c for c in wanted if c not in columns)
    if missing:
        roles = ", ".join(wanted[c] for c in missing)
        if first:
            raise DataError(
                f"{key}: source {src.name!r}: column(s) {missing} ({roles}) not in the rows of {file}; "
                f"its columns: {sorted(columns)}"
            )
        raise DataError(
            f"{key}: source {src.name!r}: column(s) {missing} ({roles}) missing from {file} "
            f"(rows 1-{parquet.metadata.num_rows}, 1-based), which the source's first file has"
        )
    return parquet


def _check_utf8(src: Source, key: str, file: Path) -> None:
    """Fail naming the 1-based line of the first byte of ``file`` that is not UTF-8 (one pass over
    the bytes; the lines are looked at only when there is one)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with file.open("rb") as f:
            while block := f.read(1 << 22):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        return
    except UnicodeDecodeError:
        pass
    with file.open("rb") as f:
        for n, raw in enumerate(f, start=1):  # a character never spans a line break
            try:
                decoded_line(raw, n)
            except ValueError as err:
                _not_utf8(src, key, file, err)


def _not_utf8(src: Source, key: str, file: Path, err: ValueError):
    raise DataError(f"{key}: source {src.name!r}: {file}: {err}: save the file as UTF-8") from None


def _json_lines(src: Source, key: str, file: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) of every non-blank line of a JSON Lines file, ``where`` = "<file>: line N"."""
    with file.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                text = decoded_line(raw, n)
            except ValueError as err:
                _not_utf8(src, key, file, err)
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as err:
                raise DataError(
                    f"{key}: source {src.name!r}: {file}: line {n}: not valid JSON ({err.msg} at column "
                    f"{err.colno}): {text.strip()[:80]!r}"
                ) from None
            if not isinstance(row, dict):
                raise DataError(
                    f"{key}: source {src.name!r}: {file}: line {n}: a JSON {type(row).__name__}, "
                    "not an object with named fields"
                )
            yield f"{file}: line {n}", row


def _parquet_rows(src: Source, key: str, file: Path, parquet) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) of every row of a Parquet file (the mapped columns only), ``where`` =
    "<file>: row N (1-based)"."""
    columns = [c for c in _read_columns(src) if c in parquet.schema_arrow.names]
    n = 0
    try:
        for batch in parquet.iter_batches(batch_size=1024, columns=columns):
            for row in batch.to_pylist():
                n += 1
                yield f"{file}: row {n} (1-based)", row
    except Exception as err:  # noqa: BLE001 - a corrupt page: pyarrow's ArrowInvalid, OSError, ...
        raise DataError(
            f"{key}: source {src.name!r}: {file}: row {n + 1} (1-based) onward cannot be read ({err}); "
            "truncated or corrupt: copy it again"
        ) from None


def _datasets_rows(src: Source, key: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) of a source read through ``datasets`` streaming, ``where`` = "row N (1-based)"."""
    rows = iter(_open(src, key))
    n = 0
    while True:
        try:
            raw = next(rows)
        except StopIteration:
            return
        except Exception as err:  # datasets raises a zoo of types for malformed files
            path = Path(src.path).expanduser()
            where = bad_json_line(path) if path.is_file() else None
            raise DataError(
                f"{key}: source {src.name!r}: {src.path}: "
                + (where or f"row {n + 1} (1-based) cannot be read: {err}")
            ) from None
        n += 1
        yield f"{src.path}: row {n} (1-based)", raw


def _raw_rows(src: Source, key: str) -> Iterator[tuple[str, dict[str, Any]]]:
    files = local_files(src, key)
    if files is None:
        yield from _datasets_rows(src, key)
        return
    parquets = {f: _check_file(src, key, f, first=f == files[0]) for f in files}  # before any row
    for file, parquet in parquets.items():
        if parquet is not None:
            yield from _parquet_rows(src, key, file, parquet)
        elif _is_json_lines(file):
            yield from _json_lines(src, key, file)
        else:  # one JSON document (an array of rows): datasets reads it
            yield from _datasets_rows(replace(src, path=str(file)), key)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def read_source(src: Source, key: str) -> Iterator[dict[str, Any]]:
    """The source's rows, mapped to the pipeline's fields, with provenance; ``key`` names the
    recipe entry in errors (``data.sources[0]``). A local file is read here (JSON Lines line by
    line, Parquet with pyarrow); a hub id through ``datasets`` streaming."""
    seen_ids: dict[str, str] = {}
    wanted = _wanted(src)
    index, first_where = 0, ""
    for where, raw in _raw_rows(src, key):
        missing = sorted(c for c in wanted if c not in raw)
        if missing and index == 0:
            raise DataError(
                f"{key}: source {src.name!r}: column(s) {missing} ({', '.join(wanted[c] for c in missing)}) "
                f"not in the rows of {src.path}; its columns: {sorted(raw)}"
            )
        if missing:  # a later row without a column the first had: never sent on with it empty
            raise DataError(
                f"{key}: source {src.name!r}: {where}: column(s) {missing} "
                f"({', '.join(wanted[c] for c in missing)}) missing; the source's first row has them "
                f"({first_where})"
            )
        if index == 0:
            first_where = where
        row = _map(src, raw, index)
        if src.fields.get("id"):
            first = seen_ids.setdefault(row["source_id"], where)
            if first != where:
                raise DataError(
                    f"{key}: source {src.name!r}: id {row['source_id']!r} (column {src.fields['id']!r}) "
                    f"appears twice: {first} and {where}"
                )
        yield row
        index += 1
        if index == src.limit:
            return
    if index == 0:
        raise DataError(f"{key}: source {src.name!r}: {src.path}: no rows")


def _solutions(src: Source, raw: dict[str, Any]) -> tuple[list[str], dict[str, int]]:
    """The source's finished (and, where it says so, verified) solutions of one problem, and how many
    were read, marked wrong and left unfinished (the card counts them)."""
    texts: list[Any] = []
    counts = {"read": 0, "unverified": 0, "unfinished": 0}
    code = bool(src.fields.get("tests"))
    for column in src.solution_columns:
        value = raw.get(column)
        if code and isinstance(value, str) and value.lstrip().startswith("["):  # APPS, TACO: a JSON list
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        if isinstance(value, list):
            counts["read"] += len(value)
            if src.solutions_verified:
                marks = raw.get(src.solutions_verified) or []
                kept = [v for v, ok in zip(value, marks, strict=False) if ok is True]
                counts["unverified"] += len(value) - len(kept)
                value = kept
            texts += value
        elif value:
            counts["read"] += 1
            texts.append(value)
    out = []
    for t in texts:
        t = _text(t).strip()
        if code and t and "```" not in t:  # a bare program: fenced, as code_tests and a student read it
            t = f"```python\n{t}\n```"
        if "</think>" in t and "<think>" not in t:
            t = "<think>\n" + t
        if t and not ("<think>" in t and "</think>" not in t):
            out.append(t)
        else:
            counts["unfinished"] += 1
    return out, counts


def _map(src: Source, raw: dict[str, Any], index: int) -> dict[str, Any]:
    f = src.fields
    source_id = _text(raw[f["id"]]) if f.get("id") else str(index)
    row = {
        "uid": f"{src.name}/{source_id}",
        "source": src.name,
        "source_id": source_id,
        "problem": _text(raw[f["problem"]]),
    }
    if f.get("solution"):
        row["solution"] = _text(raw[f["solution"]])
    answer = _text(raw[f["answer"]]) if f.get("answer") else ""
    if not answer and src.answer_from_solution:
        answer = extract_boxed(row.get("solution", "")) or ""
    row["answer"] = answer
    if f.get("tests"):  # a code problem: its tests in the corpus' layout, or why they cannot be read
        try:
            more = tuple(raw.get(c) for c in src.more_tests)
            tests, row["fn_name"] = convert(
                src.tests_layout, raw[f["tests"]], raw.get(f.get("fn_name") or ""), more
            )
            row["tests"] = json.dumps(tests)
        except ValueError as err:
            row["tests_error"] = str(err)
        starter = _text(raw.get(f.get("starter_code") or ""))
        if starter:  # the function (or class) the tests call, shown as LiveCodeBench's eval shows it
            row["problem"] += f"\n\nComplete this starter code:\n```python\n{starter}\n```"
        elif row.get("fn_name"):  # call-based tests and no starter code: the name is nowhere else
            row["problem"] += f"\n\nWrite it as a Python function named `{row['fn_name']}`."
    if src.domain:
        row["source_label"] = src.domain
    if src.solution_columns:
        row["solutions"], row["solutions_count"] = _solutions(src, raw)
    if f.get("label"):
        row["source_label"] = _text(raw[f["label"]])
    if f.get("question_type"):
        row["question_type"] = _text(raw[f["question_type"]])
    failed = [c for c, want in src.where.items() if _text(raw.get(c)) != str(want)]
    if failed:
        row["where_failed"] = failed
    return row
