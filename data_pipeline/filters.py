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
_PROOF = re.compile(r"\b(prove|show|demonstrate|verify) (that|the following|rigorously)\b|\bproof\b", re.I)
_OPTION = re.compile(r"(?:^|\s)\(?([A-E])[).:]\s", re.M)
_ANSWER_CHOICES = re.compile(r"answer choices|which of the following|\\textbf\{\(A\)", re.I)
_PART = re.compile(
    r"(?<![\w\\^_)])\((?:[a-d]|i{1,3}|iv|[1-4]|I{1,3}|IV)\)|(?:^|\n)\s*(?:[a-d]|[1-4])[).]\s|\bpart \(?[a-d1-4]\b",
    re.I,
)
_FIGURE = re.compile(
    r"\[asy\]|\\includegraphics|!\[[^\]]*\]\(|<img\b|\b(?:shown|given|depicted) (?:in|on) the "
    r"(?:figure|diagram|picture|graph)|\bsee (?:the )?(?:figure|diagram)|\bas shown\b|\bfigure \d",
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
        return f"answer has {len(answer)} characters (max_answer_chars {limits.max_answer_chars})"
    return None


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
    if len(set(_OPTION.findall(row["problem"]))) >= 3 or _ANSWER_CHOICES.search(row["problem"]):
        return "the problem lists answer options"
    return None


@rule("true_false")
def true_false(row: dict[str, Any], limits: Limits) -> str | None:
    """A yes/no or true/false answer: guessable half the time, a weak RL signal."""
    answer = re.sub(r"\\text(?:bf)?\{([^{}]*)\}", r"\1", row.get("answer", "")).lower().strip(" $.")
    return f"answer {row['answer']!r} is yes/no" if answer in _TRUE_FALSE else None


@rule("multi_part")
def multi_part(row: dict[str, Any], limits: Limits) -> str | None:
    """Several questions in one problem ((a)/(b), (1)/(2), (I)/(II)): one answer cannot grade them."""
    marks = {m.group(0).strip().lower() for m in _PART.finditer(row["problem"])}
    return f"has parts {sorted(marks)[:4]}" if len(marks) >= 2 else None


@rule("figure")
def figure(row: dict[str, Any], limits: Limits) -> str | None:
    """Refers to a figure the model cannot see ([asy] code, images, 'as shown in the figure')."""
    m = _FIGURE.search(row["problem"])
    return f"refers to a figure ({m.group(0)!r})" if m else None


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


def first_failed(row: dict[str, Any], names: list[str], limits: Limits) -> tuple[str, str] | None:
    """(rule, reason) of the first rule in ``names`` that drops ``row``, or None to keep it."""
    for name in names:
        reason = RULES[name](row, limits)
        if reason:
            return name, reason
    return None
