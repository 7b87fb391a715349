"""Final-answer extraction for math problems (string work only; no sympy, no math-verify).

``extract_boxed`` takes the content of the *last* ``\\boxed{...}`` with balanced braces;
``normalise`` is the string form two answers are compared in before any symbolic check;
``words_to_number`` reads number words. Comparison itself is ``reward/math_correctness.py``'s,
in worker processes with a hard timeout: nothing here can hang or swallow an error.
"""

from __future__ import annotations

import re

_SPACE = re.compile(r"\s+")


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` in ``text`` whose braces balance, or None.

    One pass with a stack of open braces, so adversarial input (thousands of unclosed
    ``\\boxed{``) costs linear time. "Last" means the latest-starting complete box."""
    marker = "\\boxed{"
    starts = {i + len(marker) - 1 for i in _find_all(text, marker)}  # index of each box's "{"
    if not starts:
        return None
    stack: list[int] = []
    best: tuple[int, int] | None = None
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            open_at = stack.pop()
            if open_at in starts and (best is None or open_at > best[0]):
                best = (open_at, i)
    return text[best[0] + 1 : best[1]].strip() if best else None


def _find_all(text: str, sub: str):
    i = text.find(sub)
    while i != -1:
        yield i
        i = text.find(sub, i + 1)


def normalise(answer: str) -> str:
    """White space removed, surrounding ``$``, ``.`` and spaces stripped, a leading ``x=`` dropped."""
    a = _SPACE.sub("", answer).strip("$. ")
    return a.removeprefix("x=")


_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_WORDS = {w: i for i, w in enumerate(_UNITS)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)}
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")


def words_to_number(answer: str) -> str | None:
    """'five', '\\\\text{twenty-one}', 'Negative three' -> '5', '21', '-3'; None if not a number word.

    Written by hand (0-99, optionally negative): math-verify compares numbers, not number words."""
    text = _TEXT.sub(r"\1", answer).strip().lower().rstrip(".")
    sign = ""
    for prefix in ("negative ", "minus "):
        if text.startswith(prefix):
            sign, text = "-", text[len(prefix) :]
    parts = text.replace("-", " ").split()
    if not parts or any(p not in _WORDS for p in parts):
        return None
    if len(parts) == 1:
        return sign + str(_WORDS[parts[0]])
    if len(parts) == 2 and parts[0] in _TENS and 0 < _WORDS[parts[1]] < 10:
        return sign + str(_WORDS[parts[0]] + _WORDS[parts[1]])
    return None
