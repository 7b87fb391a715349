"""The corpus files every stage reads, and their row-level validation.

Layout written by the data stage (JSON Lines, loadable with ``datasets.load_dataset("json", ...)``):

    data/sft.jsonl             id, domain, problem, answer, solutions: list[str] (several distinct
                               correct solutions per problem), strategies: list[str] (tiny task)
    data/probe/<domain>.jsonl  id, domain, problem, answer        one probing set per subdomain
    data/rl.jsonl              id, domain, problem, answer        RL prompts
    data/eval.jsonl            id, domain, problem, answer        held-out evaluation set

Files a recipe brings (``data.source=files``) may be JSONL or Parquet and must hold the same
fields. A missing file, an unreadable one, an empty split, or a row whose field is missing or
empty fails before any training, with a message naming the file, the row and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import DataError

PROBLEM_FIELDS = ("id", "domain", "problem", "answer")
SFT_FIELDS = (*PROBLEM_FIELDS, "solutions")


def _read(path: Path) -> list[dict[str, Any]]:
    import datasets

    kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}.get(path.suffix)
    if kind is None:
        raise DataError(f"{path}: unsupported file type {path.suffix!r} (use .jsonl or .parquet)")
    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(kind, data_files=str(path), split="train")
    except Exception as err:  # datasets raises a zoo of types for malformed files
        raise DataError(f"{path}: cannot be read as {kind}: {err}") from None
    finally:
        datasets.enable_progress_bars()
    return ds.to_list()


def _blank(path: Path) -> bool:
    """True for a file holding nothing but white space (datasets refuses to read it)."""
    with path.open("rb") as f:
        while chunk := f.read(1 << 16):
            if chunk.strip():
                return False
    return True


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list) and len(value) == 0)


def load_rows(path: str | Path, fields: tuple[str, ...], split: str) -> list[dict[str, Any]]:
    """Read and validate one split. ``split`` names it in errors ("sft", "probe/algebra", ...)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{split} split: file not found: {path}")
    rows = [] if _blank(path) else _read(path)
    if not rows:
        raise DataError(f"{split} split is empty: {path}")
    for i, row in enumerate(rows, start=1):
        for name in fields:
            if _empty(row.get(name)):
                raise DataError(f"{path}: row {i}: field {name!r} is missing or empty ({split} split)")
        if "solutions" in fields:
            sols = row["solutions"]
            if not isinstance(sols, list) or not all(isinstance(s, str) and s.strip() for s in sols):
                raise DataError(f"{path}: row {i}: field 'solutions' must be a list of non-empty strings")
        for name in ("id", "domain", "problem", "answer"):
            if name in fields:
                row[name] = str(row[name])
    return rows


def write_rows(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write rows as JSON Lines through ``datasets`` (atomically: temporary name, then rename)."""
    import datasets

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    datasets.disable_progress_bars()
    try:
        datasets.Dataset.from_list(rows).to_json(str(tmp), lines=True, force_ascii=False)
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
