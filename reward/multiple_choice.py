"""``multiple_choice``: 1.0 if the completion's chosen option letter is the gold letter (GPQA).

Only the text after ``</think>`` is read (an unclosed ``<think>``: no choice). The choice is the
last ``\\boxed{X}`` whose content is a single option letter (``\\boxed{B}``,
``\\boxed{(B)}``, ``\\boxed{\\text{B}}``); without one, the last "answer is (X)" / "Answer: X".
No recognisable choice scores 0.0; a gold value that is not an option letter scores None.
"""

from __future__ import annotations

import re

from ssp.reward.math_answer import answer_region, extract_boxed
from ssp.reward.registry import completion_text

_LETTER = re.compile(r"^\(?\s*(?:\\text(?:bf)?\{)?\s*([A-Z])\s*\}?\s*\)?\.?$")
_STATED = re.compile(r"answer\s*(?:is|:)\s*\(?\**([A-Z])\b", re.IGNORECASE)


def choice_letter(text: str, letters: str = "ABCD") -> str | None:
    """The option letter a completion commits to, or None. As for math (``reward/math_answer.py``),
    only the text after ``</think>`` counts, and a ``<think>`` never closed commits to nothing."""
    text = answer_region(text)
    if text is None:
        return None
    boxed = extract_boxed(text)
    if boxed is not None:
        m = _LETTER.match(boxed.strip())
        if m and m.group(1) in letters:
            return m.group(1)
    stated = [m.group(1).upper() for m in _STATED.finditer(text[-2000:])]
    stated = [s for s in stated if s in letters]
    return stated[-1] if stated else None


class MultipleChoice:
    def __init__(self, answer_column: str = "answer", letters: str = "ABCD"):
        self.__name__ = "multiple_choice"
        self.answer_column, self.letters = answer_column, letters

    def __call__(self, completions: list, **columns) -> list[float | None]:
        if self.answer_column not in columns:
            raise KeyError(
                f"multiple_choice needs the dataset column {self.answer_column!r} (got: {sorted(columns)})"
            )
        out: list[float | None] = []
        for completion, gold in zip(completions, columns[self.answer_column], strict=True):
            gold = str(gold).strip().upper()
            if gold not in self.letters:
                out.append(None)
            else:
                out.append(1.0 if choice_letter(completion_text(completion), self.letters) == gold else 0.0)
        return out
