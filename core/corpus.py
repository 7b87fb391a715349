"""The corpus files every stage reads, and their row-level validation.

Layout written by the data stage (JSON Lines, loadable with ``datasets.load_dataset("json", ...)``):

    data/sft.jsonl             id, domain, problem, answer, solutions: list[str] (several distinct
                               correct solutions per problem), strategies: list[str] (tiny task)
    data/probe/<domain>.jsonl  id, domain, problem, answer        one probing set per subdomain
    data/rl.jsonl              id, domain, problem, answer        RL prompts
    data/eval.jsonl            id, domain, problem, answer        held-out evaluation set

A code row has ``tests`` instead of an answer (``answer`` empty or absent): its hidden tests in
LiveCodeBench's layout, a list of ``{"testtype": "stdin" | "functional", "input", "output"}`` or
that list as a JSON string (as LiveCodeBench stores them), and ``fn_name``, the function a
functional test calls (or each test's own ``fn_name``); ``reward/code_tests.py`` runs them.

Files a recipe brings (``data.source=files``) may be JSONL or Parquet and must hold the same
fields. A missing file, an unreadable one, an empty split, or a row whose field is missing or
empty fails before any training, with a message naming the file, the row and the field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ssp.core.errors import DataError

PROBLEM_FIELDS = ("id", "domain", "problem", "answer")
FILE_KINDS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
"""File suffixes a corpus, a source or a benchmark may have -> their ``datasets`` builder."""
SFT_FIELDS = (*PROBLEM_FIELDS, "solutions")


def _read(path: Path) -> list[dict[str, Any]]:
    import datasets

    kind = FILE_KINDS.get(path.suffix)
    if kind is None:
        raise DataError(f"{path}: unsupported file type {path.suffix!r} (use .jsonl or .parquet)")
    datasets.disable_progress_bars()
    try:  # bytes that are not UTF-8 pass load_dataset and fail in to_list
        return datasets.load_dataset(kind, data_files=str(path), split="train").to_list()
    except Exception as err:  # datasets raises a zoo of types for malformed files
        raise DataError(f"{path}: cannot be read as {kind}: {bad_json_line(path) or err}") from None
    finally:
        datasets.enable_progress_bars()


def _blank(path: Path) -> bool:
    """True for a file holding nothing but white space (datasets refuses to read it)."""
    with path.open("rb") as f:
        while chunk := f.read(1 << 16):
            if chunk.strip():
                return False
    return True


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list) and len(value) == 0)


def code_tests_problem(tests: Any, fn_name: Any) -> str:
    """Why a code row's tests cannot be run ("" when they can): a non-empty list of tests (or its
    JSON string), each with an input and an output, functional ones with a function name."""
    if isinstance(tests, str):
        try:
            tests = json.loads(tests)
        except json.JSONDecodeError as err:
            return f"field 'tests' is not JSON ({err.msg} at character {err.pos})"
    if not isinstance(tests, list) or not tests:
        return "field 'tests' must be a non-empty list of tests"
    for j, t in enumerate(tests, start=1):
        if not isinstance(t, dict) or "input" not in t or "output" not in t:
            return f"field 'tests': test {j} needs an 'input' and an 'output'"
        kind = t.get("testtype", "stdin")
        if kind not in ("stdin", "functional"):
            return f"field 'tests': test {j} has testtype {kind!r} (stdin or functional)"
        if kind == "functional" and not str(t.get("fn_name") or fn_name or "").isidentifier():
            return f"field 'tests': test {j} is functional but the row names no function (field 'fn_name')"
        if kind == "functional":  # the returned value is compared with this JSON value (code_tests)
            try:
                json.loads(t["output"])
            except (json.JSONDecodeError, TypeError):
                return f"field 'tests': test {j} is functional but its output is not a JSON value"
    return ""


def is_code_row(row: dict[str, Any]) -> bool:
    """A row graded by its tests rather than an answer."""
    return not _empty(row.get("tests"))


def load_rows(
    path: str | Path,
    fields: tuple[str, ...],
    split: str,
    key: str = "",
    domains: set[str] | None = None,
) -> list[dict[str, Any]]:
    """Read and validate one split. ``split`` names it in errors ("sft", "probe/algebra", ...),
    ``key`` the recipe key that named the file ("data.train_file"). With ``domains``, a row whose
    domain is not one of them is an error (a probe file holding another domain's rows, a corpus
    with domains the recipe does not list). Two rows with the same id are an error."""
    path = Path(path)
    named = f"{key}: " if key else f"{split} split: "
    if not path.is_file():
        raise DataError(f"{named}file not found: {path}")
    rows = [] if _blank(path) else _read(path)
    if not rows:
        raise DataError(f"{named}{split} split is empty: {path}")
    ids: dict[str, int] = {}
    for i, row in enumerate(rows, start=1):
        code = is_code_row(row)
        for name in fields:
            if name == "answer" and code:
                continue  # graded by its tests
            if _empty(row.get(name)):
                raise DataError(
                    f"{path}: row {i}: field {name!r} is missing or empty ({split} split)"
                    + (" (a code row has 'tests' instead)" if name == "answer" else "")
                )
        if code and (why := code_tests_problem(row["tests"], row.get("fn_name"))):
            raise DataError(f"{path}: row {i}: {why} ({split} split)")
        if "solutions" in fields:
            sols = row["solutions"]
            if not isinstance(sols, list) or not all(isinstance(s, str) and s.strip() for s in sols):
                raise DataError(f"{path}: row {i}: field 'solutions' must be a list of non-empty strings")
        for name in ("id", "domain", "problem", "answer"):
            if name in fields:
                row[name] = "" if row.get(name) is None else str(row[name])
        if "id" in fields:
            first = ids.setdefault(row["id"], i)
            if first != i:
                raise DataError(
                    f"{path}: rows {first} and {i} have the same id {row['id']!r} ({split} split)"
                )
        if domains is not None and row.get("domain") not in domains:
            raise DataError(
                f"{path}: row {i}: domain {row.get('domain')!r} is not "
                + (
                    f"this probing set's ({sorted(domains)[0]!r})"
                    if len(domains) == 1 and split.startswith("probe/")
                    else f"one of the recipe's data.domains {sorted(domains)}"
                )
                + f" ({key or split})"
            )
    return rows


def write_rows(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write rows as JSON Lines through ``datasets`` (atomically: temporary name, then rename).

    Every field of every row is kept: a field some rows lack (a code row's ``tests`` beside math
    rows) is written as null in the others. ``Dataset.from_list`` alone keeps only the first row's
    fields and drops the rest without a word."""
    import datasets

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fields = list(dict.fromkeys(k for r in rows for k in r))
    datasets.disable_progress_bars()
    try:
        full = [{k: r.get(k) for k in fields} for r in rows]
        datasets.Dataset.from_list(full).to_json(str(tmp), lines=True, force_ascii=False)
    finally:
        datasets.enable_progress_bars()
    tmp.replace(path)
    return path


def user_prompt(problem: str, suffix: str) -> str:
    return f"{problem} {suffix}".strip() if suffix else problem


def chat_prompt(problem: str, suffix: str) -> list[dict[str, str]]:
    """The conversation a model sees for a problem (one user turn)."""
    return [{"role": "user", "content": user_prompt(problem, suffix)}]


def sft_examples(rows: list[dict[str, Any]], suffix: str) -> list[dict[str, Any]]:
    """Expand multi-solution rows into one prompt/completion chat example per solution."""
    return [
        {
            "prompt": chat_prompt(r["problem"], suffix),
            "completion": [{"role": "assistant", "content": s}],
            "domain": r["domain"],
        }
        for r in rows
        for s in r["solutions"]
    ]


def decoded_line(raw: bytes, n: int) -> str:
    """Line ``n`` (1-based) of a file, as text; a ValueError "line N: not UTF-8 (byte 0x.. at byte M
    of the line)" where it is not UTF-8 (a byte-order mark on line 1 is dropped)."""
    try:
        return raw.decode("utf-8-sig" if n == 1 else "utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"line {n}: not UTF-8 (byte 0x{raw[err.start]:02x} at byte {err.start + 1} of the line)"
        ) from None


def bad_json_line(path: str | Path) -> str | None:
    """The first line of a JSON Lines file that is not one JSON object, as "line N (1-based): why";
    None when every line parses. ``datasets`` reports a malformed line only as "An error occurred
    while generating the dataset", with the row (0-based) in an earlier log line."""
    path = Path(path)
    if path.suffix not in (".jsonl", ".json") or not path.is_file():
        return None
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                line = decoded_line(raw, n)
            except ValueError as err:
                return str(err)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                if n == 1 and path.suffix == ".json":
                    return None  # one JSON document over several lines, not JSON Lines
                return f"line {n}: not valid JSON ({err.msg} at column {err.colno}): {line.strip()[:80]!r}"
            if not isinstance(row, dict):
                return f"line {n}: a JSON {type(row).__name__}, not an object with named fields"
    return None


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSON Lines file the pipeline wrote itself, one at a time (no file-sized memory)."""
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}: line {n}: not valid JSON ({err.msg})") from None


class JsonlWriter:
    """Write rows one at a time to a temporary file renamed to ``path`` when the ``with`` block ends
    without an error: a killed or failed step never leaves a half file under the real name."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self.count = 0

    def __enter__(self) -> JsonlWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = self.tmp.open("w", encoding="utf-8")
        return self

    def write(self, row: dict[str, Any]) -> None:
        self.file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.count += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        self.file.close()
        if exc_type is None:
            self.tmp.replace(self.path)
        else:
            self.tmp.unlink(missing_ok=True)
