"""``format``: 1.0 for a well-formed final answer, else 0.0.

Well-formed: a non-empty ``\\boxed{...}`` with balanced braces whose closing brace lies within
the last ``tail_chars`` characters of the completion (the answer comes at the end). Kept apart
from ``math_correctness`` because MGPO estimates a group's accuracy from correctness alone.
"""

from __future__ import annotations

from ssp.reward.math_answer import extract_boxed
from ssp.reward.registry import completion_text


class FormatReward:
    def __init__(self, tail_chars: int = 200, max_answer_chars: int = 1000):
        self.__name__ = "format"
        self.tail_chars, self.max_answer_chars = tail_chars, max_answer_chars

    def _score(self, text: str) -> float:
        tail = text[-(self.tail_chars + self.max_answer_chars) :]
        answer = extract_boxed(tail)
        if not answer or len(answer) > self.max_answer_chars:
            return 0.0
        end = tail.rfind("}")
        return 1.0 if len(tail) - end <= self.tail_chars else 0.0

    def __call__(self, completions: list, **columns) -> list[float | None]:
        return [self._score(completion_text(c)) for c in completions]
