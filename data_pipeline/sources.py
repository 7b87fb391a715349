"""Problem sources: public problem sets read through ``datasets``, one row at a time.

    sources:
      - name: numina
        path: AI-MO/NuminaMath-1.5          # hub id, or a local .jsonl/.json/.parquet file or folder
        fields: {problem: problem, answer: answer, solution: solution, label: problem_type,
                 question_type: question_type}
        where: {problem_is_valid: "Yes"}
        label_map: {Algebra: algebra, Inequalities: algebra, Geometry: geometry, Calculus: calculus}
        licence: Apache-2.0

Every source is opened with ``datasets.load_dataset(..., streaming=True)``: a million-row set is
never held in memory, and a hub id and a local copy in the hub's layout (a folder of
``data/train-*.parquet``) take the same code path. Each row becomes

    uid, source, source_id, problem, answer[, solution, source_label, question_type]

``source_id`` is the source's own id column where ``fields.id`` names one, otherwise the row's
0-based position in the split (stable for a fixed revision of the data). A mapped column missing
from the rows, a duplicate id, or a file that cannot be parsed is an error naming the source, the
recipe key and, for JSON Lines, the 1-based line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.corpus import FILE_KINDS, bad_json_line
from core.errors import DataError, check
from core.references import looks_local
from reward.math_answer import extract_boxed

ROLES = ("problem", "answer", "solution", "label", "id", "question_type")
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
    """{role: column}; roles: problem, answer, solution, label, id, question_type. Unmapped,
    problem reads column 'problem' and answer column 'answer' (unless answer_from_solution)."""
    answer_from_solution: bool = False
    """Take the answer from the last \\boxed{} of the solution column (MATH has no answer column)."""
    label_map: dict[str, str | None] = field(default_factory=dict)
    """The source's own label -> a recipe domain; null = outside the recipe's domains (dropped,
    counted). A label not listed goes to the classifier like an unlabelled row."""
    where: dict[str, str] = field(default_factory=dict)
    """Keep only rows whose column equals the value (NuminaMath-1.5: {problem_is_valid: 'Yes'})."""
    licence: str = ""
    """The source's licence, copied into the data card."""
    limit: int = 0
    """Read only the first N rows (0 = all): for trials, never for a corpus you train on."""

    def __post_init__(self):
        check(self, "name", bool(self.name) and "/" not in self.name, "must be a short name without '/'")
        check(self, "path", bool(self.path), "is required (a hub dataset id or a local file or folder)")
        self.fields = dict(self.fields)
        self.fields.setdefault("problem", "problem")
        if not self.answer_from_solution:
            self.fields.setdefault("answer", "answer")
        unknown = sorted(set(self.fields) - set(ROLES))
        check(self, "fields", not unknown, f"unknown roles {unknown}; known: {list(ROLES)}")
        check(self, "fields", bool(self.fields.get("problem")), "must map 'problem' to a column")
        check(
            self,
            "fields",
            bool(self.fields.get("answer"))
            or (self.answer_from_solution and bool(self.fields.get("solution"))),
            "must map 'answer', or 'solution' with answer_from_solution: true",
        )
        check(self, "limit", self.limit >= 0, "must be >= 0")


def _open(src: Source, key: str):
    import datasets

    if looks_local(src.path):
        path = Path(src.path).expanduser()
        if not path.exists():
            raise DataError(f"{key}.path: source {src.name!r}: file or folder not found: {path}")
        if path.is_file():
            kind = FILE_KINDS.get(path.suffix)
            if kind is None:
                raise DataError(
                    f"{key}.path: {path}: unsupported file type {path.suffix!r} (.jsonl, .json, .parquet)"
                )
            return datasets.load_dataset(kind, data_files=str(path), split="train", streaming=True)
        return datasets.load_dataset(str(path), name=src.subset or None, split=src.split, streaming=True)
    try:
        return datasets.load_dataset(src.path, name=src.subset or None, split=src.split, streaming=True)
    except Exception as err:
        raise DataError(
            f"{key}: source {src.name!r}: cannot open hub dataset {src.path!r} (subset {src.subset!r}, "
            f"split {src.split!r}): {err}. Without a hub connection, point path at a local copy "
            f"(a folder in the hub's layout or a .jsonl/.parquet file)."
        ) from None


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def read_source(src: Source, key: str) -> Iterator[dict[str, Any]]:
    """The source's rows, mapped to the pipeline's fields, with provenance; ``key`` names the
    recipe entry in errors (``data.sources[0]``)."""
    ds = _open(src, key)
    seen_ids: dict[str, int] = {}
    rows = iter(ds)
    index = 0
    while not src.limit or index < src.limit:
        try:
            raw = next(rows)
        except StopIteration:
            return
        except Exception as err:  # datasets raises a zoo of types for malformed files
            where = bad_json_line(src.path) if Path(src.path).is_file() else None
            raise DataError(
                f"{key}: source {src.name!r}: {src.path}: " + (where or f"cannot be read: {err}")
            ) from None
        if index == 0:
            wanted = {
                **{c: f"fields.{r}" for r, c in src.fields.items() if c},
                **{c: "where" for c in src.where},
            }
            missing = sorted(c for c in wanted if c not in raw)
            if missing:
                raise DataError(
                    f"{key}: source {src.name!r}: column(s) {missing} ({', '.join(wanted[c] for c in missing)}) "
                    f"not in the rows of {src.path}; its columns: {sorted(raw)}"
                )
        row = _map(src, raw, index)
        if src.fields.get("id"):
            first = seen_ids.setdefault(row["source_id"], index)
            if first != index:
                raise DataError(
                    f"{key}: source {src.name!r}: id {row['source_id']!r} (column {src.fields['id']!r}) "
                    f"appears in rows {first + 1} and {index + 1} (1-based)"
                )
        yield row
        index += 1


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
    if f.get("label"):
        row["source_label"] = _text(raw[f["label"]])
    if f.get("question_type"):
        row["question_type"] = _text(raw[f["question_type"]])
    failed = [c for c, want in src.where.items() if _text(raw.get(c)) != str(want)]
    if failed:
        row["where_failed"] = failed
    return row
