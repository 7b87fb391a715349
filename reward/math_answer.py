"""Final-answer extraction for math problems (string work only; no sympy, no math-verify).

``final_answer`` is the policy for what in a completion counts as its answer (docs/rewards.md,
"What is an answer"):

- reasoning inside ``<think>...</think>`` is never graded: only the text after the last
  ``</think>`` is (a completion of a model whose chat template opens the block in the prompt has
  only the closing tag); an opened ``<think>`` that is never closed holds *no answer*: the model
  was cut, or never stopped thinking;
- the answer is the last ``\\boxed{...}`` (or ``\\fbox{...}``, or ``\\boxed 9`` without braces);
- without one, an explicit final-answer statement on the *last* line (``The final answer is 7``,
  ``Answer: 7``, ``The answer is 7.``, GSM8K's ``#### 7``, a Q/A prompt's ``A: 7``) with no other
  sentence after the answer (Minerva's "I hope it is correct." aside) and at most four words
  outside math (``Answer: Let's think step by step.`` is no answer); a closing ``Answer:``
  section of one finished sentence gives its one number ("Answer: It takes 215 minutes."); a base model that runs on
  into a question of its own (a line ``Question:``, ``Q:`` or ``Problem:``) is read up to it;
- anything else holds no answer: a completion that trails off ("...perhaps the answer is 25. But
  let me verify") is unfinished work, never graded from its last number.

``extract_boxed`` takes the content of the *last* ``\\boxed{...}`` with balanced braces;
``normalise`` is the string form two answers are compared in before any symbolic check;
``words_to_number`` reads number words. Comparison itself is ``reward/math_correctness.py``'s,
in worker processes with a hard timeout: nothing here can hang or swallow an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPACE = re.compile(r"\s+")
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
# Why a completion holds no answer (FinalAnswer.missing).
NO_ANSWER, UNCLOSED_THINK = "no_answer", "unclosed_think"

# An explicit final-answer statement: the line's last marker, then the answer to the line's end.
_STATED = re.compile(
    r"^(?:(?:.*[\s*({])?(?:answer\s*(?:is|:)|####)|A:)\s*:?\s*(?P<answer>.*?)\s*$", re.IGNORECASE
)
# A base model in a few-shot prompt runs on into a question of its own (harnesses stop there).
_NEXT_QUESTION = re.compile(r"\n\s*(?:Question|Q|Problem)\s*:")
_DISPLAY_ENDS = ("\\]", "$$", "\\end{align*}", "\\end{equation*}")
_HOPE = re.compile(r"\s*I hope it is correct\.?\s*$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.\s+(?=[A-Z][a-z])")  # "25. But let me verify": another sentence
_WORD = re.compile(r"(?<!\\)\b[A-Za-z]{2,}\b")  # LaTeX commands are not words
_INLINE_MATH = re.compile(r"\$[^$]*\$|\\\(.*?\\\)")
MAX_ANSWER_WORDS = 4  # a stated "answer" of more words is a sentence, not an answer
_HEADING = re.compile(r"(?:^|\n)[ \t]*[#*]*[ \t]*(?:final[ \t]+)?answer\**[ \t]*:\**", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
MAX_SECTION_CHARS = 300
_BARE_BOX = re.compile(r"\\boxed\s+([^\s${}\\]+)")


@dataclass(frozen=True)
class FinalAnswer:
    """What a completion answers: ``text`` (None when it holds no answer), how it was found
    (``boxed`` / ``stated``), and why not when it was not (``NO_ANSWER`` / ``UNCLOSED_THINK``)."""

    text: str | None
    how: str = ""
    missing: str = ""


def answer_region(text: str) -> str | None:
    """The text that may hold the answer: after the last ``</think>``; None for an unclosed block."""
    close = text.rfind(THINK_CLOSE)
    if close != -1:
        return text[close + len(THINK_CLOSE) :]
    return None if THINK_OPEN in text else text


def final_answer(text: str) -> FinalAnswer:
    """The completion's final answer under the policy of the module docstring."""
    region = answer_region(text.replace("\x08oxed", "\\boxed"))  # "\b" once read as a backspace
    if region is None:
        return FinalAnswer(None, missing=UNCLOSED_THINK)
    boxed = extract_boxed(region)
    if boxed:  # an empty \\boxed{} answers nothing
        return FinalAnswer(boxed, "boxed")
    stated = stated_answer(region)
    if stated is None and (m := _NEXT_QUESTION.search(region)) and m.start() > 0:
        stated = stated_answer(region[: m.start()])
    if stated is not None:
        return FinalAnswer(stated, "stated")
    return FinalAnswer(None, missing=NO_ANSWER)


def stated_answer(text: str) -> str | None:
    """The answer of an explicit final-answer statement on the last non-empty line, else the
    number of a closing one-sentence ``Answer:`` section, else None."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    while lines and lines[-1].strip() in _DISPLAY_ENDS:  # "\\text{Answer: } 7" inside \\[ ... \\]
        lines.pop()
    if not lines:
        return None
    m = _STATED.match(lines[-1])
    answer = _HOPE.sub("", m.group("answer")).strip("* \t").lstrip("} ") if m else ""  # "**Answer:** $7$"
    if not answer or _SENTENCE_END.search(answer):  # "25. But let me verify": the line goes on
        return None if answer else _section_number(text)
    if len(_WORD.findall(_INLINE_MATH.sub("", answer))) > MAX_ANSWER_WORDS:  # a sentence
        return _section_number(text)
    answer = answer.rstrip(".").strip()
    if answer.startswith("$") and answer.endswith("$") and len(answer) > 1:
        answer = answer.strip("$").strip()
    elif answer.startswith("\\(") and answer.endswith("\\)"):
        answer = answer[2:-2].strip()
    return answer or None


def _section_number(text: str) -> str | None:
    """The number of a closing ``Answer:`` section (a heading at the start of a line) that is one
    finished sentence with one number, or one number after its last ``=`` ("Answer:\\nIt will take
    Max 215 minutes."); None otherwise: a sentence with two numbers does not say which it means."""
    heading = next(reversed(list(_HEADING.finditer(text))), None)
    if heading is None:
        return None
    section = text[heading.end() :].strip()
    if not section or len(section) > MAX_SECTION_CHARS or _SENTENCE_END.search(section):
        return None
    numbers = _NUMBER.findall(section.rsplit("=", 1)[-1])  # "50 - 5 = 45 chairs": after the last =
    return numbers[0].replace(",", "") if len(numbers) == 1 else None  # two numbers: which one?


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text`` whose braces balance,
    or None; ``\\boxed 9`` (no braces, as some MATH solutions write it) counts when it is last.

    One pass with a stack of open braces, so adversarial input (thousands of unclosed
    ``\\boxed{``) costs linear time. "Last" means the latest-starting complete box."""
    bare = next(reversed(list(_BARE_BOX.finditer(text))), None)
    braced = _last_braced(text)
    if bare is not None and (braced is None or bare.start() > braced[0]):
        return bare.group(1).strip()
    return text[braced[0] + 1 : braced[1]].strip() if braced else None


def _last_braced(text: str) -> tuple[int, int] | None:
    starts = {i + len(m) - 1 for m in ("\\boxed{", "\\fbox{") for i in _find_all(text, m)}
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
    return best


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
