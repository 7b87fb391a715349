"""Final-answer extraction and comparison for math problems.

``extract_boxed`` takes the content of the *last* ``\\boxed{...}`` with balanced braces.
``answers_match`` first compares normalised strings (enough for the tiny task's integers)
and falls back to math-verify (gold first: its ``verify`` is asymmetric).

Departure from a hardened verifier: math-verify runs in this process, protected only by its
own ``signal.alarm`` timeouts (main thread only); a process pool with hard kills is the job of
the reward registry. Any exception from math-verify scores as "no match", never a crash.
"""

from __future__ import annotations

import re

_SPACE = re.compile(r"\s+")


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` in ``text``, or None (absent or unbalanced)."""
    start = text.rfind("\\boxed{")
    while start != -1:
        depth, i = 0, start + len("\\boxed")
        for j in range(i, len(text)):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    return text[i + 1 : j].strip()
        start = text.rfind("\\boxed{", 0, start)  # unbalanced: try an earlier one
    return None


def _normalise(answer: str) -> str:
    a = _SPACE.sub("", answer).strip("$. ")
    return a.removeprefix("x=")


def answers_match(gold: str, predicted: str | None) -> bool:
    if predicted is None:
        return False
    if _normalise(gold) == _normalise(predicted):
        return True
    try:
        from math_verify import parse, verify

        return bool(verify(parse(f"${gold}$"), parse(f"${predicted}$")))
    except Exception:
        return False


def is_correct(gold: str, completion: str) -> bool:
    """Does the completion's last boxed answer equal the gold answer?"""
    return answers_match(gold, extract_boxed(completion))
