"""Problem filters: named rules that drop problems a verifier cannot grade or a student should not learn
from. Each rule is a function ``(row, limits) -> reason | None``; a row is dropped by the first rule
(in the recipe's order) that gives a reason, so the card's counts per rule add up to the drops.

Adding a rule: write a function below with ``@rule("name")`` and list the name in
``data.build.filters``. Rules look at the mapped row (``problem``, ``answer``, ``solution``,
``question_type``) only; patterns follow OpenThoughts' ``math/filter.py`` (figures, multi-part)
and AceReason's exclusions (multiple choice, true/false, proofs), written for this project.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ssp.core.corpus import code_tests_problem
from ssp.data_pipeline.text import statement


@dataclass(frozen=True)
class Limits:
    max_problem_chars: int = 3000
    max_answer_chars: int = 100


Rule = Callable[[dict[str, Any], Limits], str | None]
RULES: dict[str, Rule] = {}


def rule(name: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        RULES[name] = fn
        return fn

    return register


_PLACEHOLDER_ANSWERS = {"", "proof", "notfound", "not found", "none", "n/a", "na", "null", "-", "?"}
# An imperative: at the start of the text or a sentence, after a part marker, or after "and"/"then"/"to"
# ("the census shows that", "will the census show that" are not proof requests).
_PROOF = re.compile(
    r"(?:^|[.!?:;]\s+|\n\s*|\)\s*|\b(?:and|then|also|to|please)\s+)"
    r"(?:[Pp]rove|[Ss]how|[Dd]emonstrate|[Vv]erify) (?:that|the following|rigorously)\b"
    r"|\b(?:give|write|provide|complete) (?:a|the) proof\b|\bproof\b(?= that| of the)"
)
_OPTION = re.compile(
    r"(?:^|\s|\{|\\qquad|\\quad)\(?([A-E])[).:]\s*(?:\}|\s|\$)|\\(?:text|textbf|mathrm|mathbf)\s*\{\s*\(([A-E])\)",
    re.M,
)
_ANSWER_CHOICES = re.compile(r"answer choices|which of the following|\\textbf\{\(A\)", re.I)
# A part marker: (a) (b), (1) (2), (i) (ii), (I) (II) / (Ⅰ) (Ⅱ), or a line starting "1." / "a)". Upper-case
# letters are option labels (multiple choice), not parts.
_PART = re.compile(
    r"(?<![\w\\^_)])\((?:[a-d]|i{1,3}|iv|[1-4]|I{1,3}|IV|[ⅠⅡⅢⅣ])\)|(?:^|\n)\s*(?:[a-d]|[1-4])[).]\s"
    r"|\bpart \(?[a-d1-4]\b"
)
# "Solve the following equations: (1) ...; (2) ...": one request for each part, made before the parts
_LEAD_IN = re.compile(
    r"\b(?:solve|calculate|compute|simplify|evaluate|factori[sz]e|expand)\b[^.?:]{0,40}"
    r"\b(?:following|equations|expressions|inequalities|requirements)\b",
    re.I,
)
_ASKS = re.compile(
    r"\?|\b(?:find|compute|calculate|determine|evaluate|solve|prove|show|simplify|express|write|what|how|which)\b",
    re.I,
)
_IMAGE = re.compile(r"\\includegraphics|!\[[^\]]*\]\(|<img\b", re.I)
# A figure named as such: tables, lists and rows "shown below" are in the text, and "the image of C" under
# a rotation or "the area of the picture" name no figure, so they do not count.
_FIGURE_REFERENCE = re.compile(
    r"\b(?:in|on|from|see|of) (?:the|this|that) (?:figure|diagram|drawing)\b|\bin the picture\b"
    r"|\b(?:figure|diagram|picture|drawing) (?:below|above|shown)\b|\bfigure \d",
    re.I,
)
_TRUE_FALSE = {"true", "false", "yes", "no", "correct", "incorrect"}


@rule("where")
def where(row: dict[str, Any], limits: Limits) -> str | None:
    """The source's own validity columns (``where`` in the source's recipe entry) do not match."""
    failed = row.get("where_failed")
    return f"column(s) {failed} do not have the required values" if failed else None


@rule("no_answer")
def no_answer(row: dict[str, Any], limits: Limits) -> str | None:
    """No gradable final answer: empty, a placeholder ('proof', 'notfound'), or longer than
    ``max_answer_chars`` (prose answers math-verify cannot compare)."""
    answer = row.get("answer", "").strip()
    if answer.lower().strip("$ .") in _PLACEHOLDER_ANSWERS:
        return f"answer {answer!r} is not a gradable value"
    if len(answer) > limits.max_answer_chars:
        words = _prose_words(answer)
        if len(words) > 4:
            return (
                f"answer has {len(answer)} characters (max_answer_chars {limits.max_answer_chars}) and reads "
                f"as prose ({' '.join(words[:5])!r}...)"
            )
    return None


def _prose_words(answer: str) -> list[str]:
    """Words of an answer outside LaTeX: a long matrix or expression has none, a sentence has many."""
    text = re.sub(r"\\(?:begin|end)\{[^}]*\}|\\[A-Za-z]+", " ", answer)
    return [w for w in re.sub(r"[^A-Za-z]+", " ", text).split() if len(w) > 1]


@rule("proof")
def proof(row: dict[str, Any], limits: Limits) -> str | None:
    """A proof problem: the source says so (question_type 'proof') or the text asks to prove/show."""
    if row.get("question_type", "").lower() == "proof":
        return "question_type is 'proof'"
    m = _PROOF.search(row["problem"])
    return f"asks for a proof ({m.group(0)!r})" if m else None


@rule("multiple_choice")
def multiple_choice(row: dict[str, Any], limits: Limits) -> str | None:
    """Multiple choice: the source says so (question_type 'MCQ'), the answer is an option letter,
    or the text lists options (A) ... (B) ... / 'which of the following'."""
    if row.get("question_type", "").lower() in ("mcq", "multiple-choice", "multiple choice"):
        return f"question_type is {row['question_type']!r}"
    if re.fullmatch(r"\(?[A-E]\)?|\\text(bf)?\{\(?[A-E]\)?\}", row.get("answer", "").strip()):
        return f"answer {row['answer']!r} is an option letter"
    options = {a or b for a, b in _OPTION.findall(row["problem"])}
    if len(options) >= 3 or _ANSWER_CHOICES.search(row["problem"]):
        return "the problem lists answer options"
    return None


@rule("true_false")
def true_false(row: dict[str, Any], limits: Limits) -> str | None:
    """A yes/no or true/false answer: guessable half the time, a weak RL signal."""
    answer = re.sub(r"\\text(?:bf)?\{([^{}]*)\}", r"\1", row.get("answer", "")).lower().strip(" $.")
    return f"answer {row['answer']!r} is yes/no" if answer in _TRUE_FALSE else None


@rule("multi_part")
def multi_part(row: dict[str, Any], limits: Limits) -> str | None:
    """Several questions in one problem: two or more parts ((a)/(b), (1)/(2), (I)/(II)) that each ask
    something (a question mark or find/compute/prove/...), or parts after a request made of all of them
    ("Solve the following equations: (1) ...; (2) ..."). Parts that only list conditions ("(i) f(1) =
    1, (ii) ...") are one problem; figure code is not read."""
    text = statement(row["problem"])
    marks = list(_PART.finditer(text))
    asking = [
        m.group(0).strip()
        for m, end in zip(marks, [n.start() for n in marks[1:]] + [len(text)], strict=False)
        if _ASKS.search(text[m.end() : end])
    ]
    if len(set(asking)) >= 2:
        return f"has {len(asking)} parts that each ask something {asking[:4]}"
    parts = [m.group(0).strip() for m in marks]
    if len(set(parts)) >= 2 and (m := _LEAD_IN.search(text[: marks[0].start()])):
        return f"asks {m.group(0)!r} of {len(parts)} parts {parts[:4]}"
    return None


@rule("figure")
def figure(row: dict[str, Any], limits: Limits) -> str | None:
    """Refers to a figure the model cannot see: an image, or a figure named in the text ("as shown",
    "in the diagram") with no figure code. Asymptote code ([asy]) is in the text: see ``asy``."""
    if m := _IMAGE.search(row["problem"]):
        return f"has an image ({m.group(0)!r})"
    if "[asy]" not in row["problem"] and (m := _FIGURE_REFERENCE.search(row["problem"])):
        return f"refers to a figure it does not include ({m.group(0)!r})"
    return None


@rule("asy")
def asy(row: dict[str, Any], limits: Limits) -> str | None:
    """Opt-in: has Asymptote figure code. Most such MATH problems are fully stated in their text (a
    hand-read sample: 23 of 40), so this is not a default rule; add it for text-only corpora."""
    return "has Asymptote figure code ([asy])" if "[asy]" in row["problem"] else None


@rule("too_long")
def too_long(row: dict[str, Any], limits: Limits) -> str | None:
    """Longer than ``max_problem_chars`` characters."""
    n = len(row["problem"])
    return (
        f"{n} characters (max_problem_chars {limits.max_problem_chars})"
        if n > limits.max_problem_chars
        else None
    )


@rule("empty_problem")
def empty_problem(row: dict[str, Any], limits: Limits) -> str | None:
    """No problem text at all."""
    return "problem text is empty" if not row["problem"].strip() else None


@rule("no_tests")
def no_tests(row: dict[str, Any], limits: Limits) -> str | None:
    """A code row whose tests cannot be run: unreadable in the source's layout, none, malformed, a
    functional test without a function name (``core/corpus.code_tests_problem``)."""
    if "tests_error" in row:
        return f"tests: {row['tests_error']}"
    if "tests" in row:
        return code_tests_problem(row["tests"], row.get("fn_name")) or None
    return None


# The rules that read a code row (its problem text, its tests); the others judge math answers and
# statements ("answer 'proof'", option letters, part markers) and leave code rows alone.
CODE_RULES = ("where", "empty_problem", "too_long", "no_tests")


def first_failed(row: dict[str, Any], names: list[str], limits: Limits) -> tuple[str, str] | None:
    """(rule, reason) of the first rule in ``names`` that drops ``row``, or None to keep it. A code
    row (one with tests) is tried by ``no_tests`` first, listed or not (a row whose tests cannot
    run is never sent on), then by the listed rules of ``CODE_RULES`` only."""
    code = "tests" in row or "tests_error" in row
    order = ["no_tests", *(n for n in names if n in CODE_RULES and n != "no_tests")] if code else names
    for name in order:
        reason = RULES[name](row, limits)
        if reason:
            return name, reason
    return None
