"""Markdown tables, the one way every table a researcher reads is written (probe, eval, data
card, report)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def markdown_table(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    """A GitHub-flavoured table: the header, a separator, one line per row (cells as ``str``)."""
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
