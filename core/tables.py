"""Markdown tables, the one way every table a researcher reads is written (probe, eval, data
card, report)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def markdown_table(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    """A GitHub-flavoured table: the header, a separator, one line per row (cells as ``str``)."""

    def line(cells) -> str:
        return "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"  # an empty cell is "| |"

    return "\n".join([line(header), "|---" * len(header) + "|", *(line(row) for row in rows)])
