"""The forms an answer is put in before it is compared (string work only; no sympy).

math-verify is the engine that decides equality (``reward/math_correctness.py``); what it is
handed is decided here, the same way for the gold answer and the model's, so no rule can make
an answer match in one direction only. Each rule is a class of real disagreements with an
established grader (docs/rewards.md, "What counts as equal"):

- currency: an escaped dollar (``\\$36``) is dropped;
- number words: ``\\text{five}`` -> ``5``;
- a trailing full stop ends a sentence, not an answer: ``(-\\infty, 0) \\cup\\{1\\}.``; a stray ``$``
  and OlympiadBench's ``$,$`` between answers are delimiters, not part of it;
- a one-character index in braces is the index: ``E_{1}`` = ``E_1``; an index that is a command is
  a name: ``L_{\\odot}`` (math-verify could parse neither);
- scientific notation ``4.5e33`` is ``4.5\\times10^{33}`` (math-verify reads ``4.5 * e * 33``);
- ``\\log`` without a base is the natural logarithm, as ``\\ln`` (math-verify reads base 10);
- percent: ``5.3\\%`` and ``5.3`` are the same answer, in either direction; a bare number
  against a percentage also matches its hundredth (``8\\%`` = ``0.08``), as in Qwen2.5-Math's
  grader;
- units: degrees, a unit in ``\\text{}`` after a number, and unit *words* after a number are
  dropped. Single letters never are: math-verify's own unit list strips ``h``, ``t``, ``s``,
  ``m``... after a digit (so ``4h`` equalled ``4``), and ``am``/``pm`` (so 5am equalled 5pm); its
  unit removal is switched off and this narrower list used instead;
- times of day with am/pm are compared as times (``5 pm`` = ``17:00``, never ``5am``);
- option letters: against a gold answer that is one letter (``D``, ``(D)``, ``\\text{(D)}``) a
  prediction that starts with an option letter (``(D) $4(x+1)=4x$``) is compared by letter;
- a simple left-hand side is a name, not part of the answer: ``y = 2x+1`` = ``f(x) = 2x+1``.
"""

from __future__ import annotations

import re

from ssp.reward.math_answer import words_to_number

_TRAILING_STOP = re.compile(r"(?<![.\\])\.\s*$")
# Scientific notation, told apart from "2e+1" (2e + 1): a decimal mantissa, a minus sign or a
# two-digit exponent ("4e33", "1e-8", "3.61e-10", "4.5e+33").
_SCI = re.compile(r"(?<![\w.\\{])(\d+\.\d+|\d+(?=\s*[eE]\s*(?:-|\+?\d\d)))\s*[eE]\s*([+-]?\d+)(?![\w.])")
_BRACED_INDEX = re.compile(r"([_^])\{(\w)\}")
_COMMAND_INDEX = re.compile(r"_\{\\([A-Za-z]+)\}")
_LOG = re.compile(r"\\log(?![a-zA-Z_])")
_PERCENT = re.compile(r"\s*(?:\\text\{\s*\\?%\s*\}|\\%|%|\\text\{\s*percent\s*\}|\s+percent)\s*$")
_DEGREES = re.compile(
    r"\s*(?:\^\s*\{?\s*\\circ\s*\}?|\\circ|°|\\degree)\s*(?:\\?text\{\s*[CF]\s*\}|[CF](?![a-zA-Z]))?"
)
_TEXT_UNIT = re.compile(
    r"(?<=[\d}\s])\s*\\(?:text|mbox|mathrm|textrm)\s*\{(?!\s*[ap]\.?\s*m\.?\s*\})[^{}]*[A-Za-z][^{}]*\}"
    r"(?:\s*\^\s*\{?\d\}?)?\s*$",
    re.IGNORECASE,
)
_UNIT_WORDS = (
    "cm mm km kg mg ft feet foot inch inches yd yard yards mile miles mph kmph hour hours hr hrs minute "
    "minutes min mins second seconds sec secs day days week weeks month months year years degree degrees "
    "dollar dollars cent cents unit units meter meters metre metres liter liters litre litres gallon "
    "gallons pound pounds lb lbs ounce ounces oz gram grams kilogram kilograms"
).split()
_WORD_UNIT = re.compile(
    r"(?<=[\d}])\s*(?:square\s+|sq\.?\s+|cubic\s+)?(?:"
    + "|".join(sorted(_UNIT_WORDS, key=len, reverse=True))
    + r")\.?(?:\s*\^\s*\{?\d\}?)?\s*$",
)
_TIME = re.compile(
    r"^(\d{1,2})(?::(\d{2}))?\s*(?:\\(?:text|mathrm)\s*\{\s*)?([ap])\.?\s*m\.?\s*\}?$", re.IGNORECASE
)
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
_GOLD_LETTER = re.compile(r"^\(?\s*(?:\\text(?:bf)?\s*\{\s*)?\(?\s*([A-J])\s*\)?\s*\}?\s*\)?\.?$")
_LEADING_LETTER = re.compile(
    r"^\s*(?:(?:the\s+)?(?:option|choice)\s+)?(?:\\text(?:bf)?\s*\{\s*)?(?:\(([A-J])\)|([A-J])(?:[.:)]|\s*$))",
    re.IGNORECASE,
)
_SIMPLE_LHS = re.compile(
    r"^\s*[A-Za-z](?:_\{?\w+\}?)?(?:\s*\(\s*[A-Za-z](?:\s*,\s*[A-Za-z])*\s*\))?\s*=(?!=)"
)


def canonical(answer: str) -> str:
    """The answer with the rules of the module docstring applied (not the rules that compare pairs:
    ``option_letters``, ``times``, ``percent_forms``, ``right_hand_sides``)."""
    a = answer.strip()
    a = words_to_number(a) or a
    a = a.replace("\\$", "").replace("$,$", ", ").strip()  # OlympiadBench joins answers with "$,$"
    a = _TRAILING_STOP.sub("", a)
    if a.count("$") % 2:  # a stray delimiter: "(-\\infty, 0) \\cup\\{1\\}$."
        a = a.strip("$ ")
    a = _BRACED_INDEX.sub(r"\1\2", a)  # E_{1} -> E_1 (math-verify cannot parse E_{1})
    a = _COMMAND_INDEX.sub(r"_{\1}", a)  # L_{\odot} -> L_{odot}: an index is a name
    a = _SCI.sub(r"\1\\times10^{\2}", a)
    a = _LOG.sub(r"\\ln", a)
    a = _DEGREES.sub("", a)
    for _ in range(2):
        a = _TEXT_UNIT.sub("", a).strip() or a
        a = _WORD_UNIT.sub("", a).strip() or a
    return a


def right_hand_sides(gold: str, predicted: str) -> tuple[str, str]:
    """A simple left-hand side (a name, or ``f(x)``) is dropped where that makes the two comparable:
    from both when both have one (``y = 2x+1`` vs ``f(x) = 2x+1``), from one when the other is no
    equation (``x = 3`` vs ``3``). Other equations are left whole (``y = 2x+1`` vs
    ``2x - y + 1 = 0`` is math-verify's to compare)."""
    g, p = _rhs(gold), _rhs(predicted)
    if g is not None and p is not None:
        return g, p
    if g is not None and "=" not in predicted:
        return g, predicted
    if p is not None and "=" not in gold:
        return gold, p
    return gold, predicted


def _rhs(answer: str) -> str | None:
    m = _SIMPLE_LHS.match(answer)
    if m and "=" not in answer[m.end() :] and "," not in answer:
        return answer[m.end() :].strip()
    return None


def percent_forms(gold: str, predicted: str) -> list[tuple[str, str]]:
    """(gold, predicted) pairs to try, percent signs removed: the plain pair, and, when exactly
    one side was a percentage, the other side against its hundredth."""
    g, g_pct = _strip_percent(gold)
    p, p_pct = _strip_percent(predicted)
    pairs = [(g, p)]
    if g_pct and not p_pct:
        pairs.append((f"\\frac{{{g}}}{{100}}", p))
    elif p_pct and not g_pct:
        pairs.append((g, f"\\frac{{{p}}}{{100}}"))
    return pairs


def _strip_percent(answer: str) -> tuple[str, bool]:
    stripped = _PERCENT.sub("", answer)
    return stripped, stripped != answer


def option_letters(gold: str, predicted: str) -> tuple[str, str | None] | None:
    """(gold letter, the prediction's option letter or None) when the gold is one option letter;
    None when it is not."""
    g = _GOLD_LETTER.match(gold.strip())
    if not g:
        return None
    p = _LEADING_LETTER.match(predicted)
    return g.group(1), (p.group(1) or p.group(2)).upper() if p else None


def times(gold: str, predicted: str) -> tuple[tuple[int, int] | None, tuple[int, int] | None] | None:
    """Both sides as (hour, minute) on a 24-hour clock when either is a time with am/pm; else None."""
    if not (_TIME.match(gold.strip()) or _TIME.match(predicted.strip())):
        return None
    return _clock(gold), _clock(predicted)


def _clock(text: str) -> tuple[int, int] | None:
    text = text.strip()
    if m := _TIME.match(text):
        hour, minute = int(m.group(1)) % 12, int(m.group(2) or 0)
        return hour + (12 if m.group(3).lower() == "p" else 0), minute
    if m := _CLOCK.match(text):
        return int(m.group(1)), int(m.group(2))
    return None
