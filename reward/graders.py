"""Other graders than ssp's: the protocols published numbers were graded with.

A gap between a paper's number and yours is partly grading. ``math_correctness`` takes
``grader:`` (recipe reward options, a benchmark's ``reward_options``, ``ssp eval --graders``):

``ssp`` (default)
    ``reward/math_correctness.py``: answer after ``</think>``, last ``\\boxed{}`` or a final-answer
    line, forms of ``reward/answer_forms.py``, math-verify. Truncated completions score 0.
``deepscaler``
    The protocol of VibeThinker's released math evaluation (rllm / DeepScaleR's grader): the text
    after ``</think>`` (a ``<think>`` never closed is a format error, 0), its last ``\\boxed{}`` (none:
    0), then correct if the Hendrycks-normalised strings are equal (``grade_answer_mathd``) or the
    PRM800K-style check holds (``grade_answer_sympy``: normalised strings equal; tuples element by
    element; an integer or fraction gold needs the same literal form; otherwise
    ``sympy.simplify(gold - answer) == 0`` when the expression has at most two unknowns).
    Truncated completions score 0. Departure: a completion with no ``</think>`` at all (a model that
    does not think aloud) is graded whole; rllm's RL reward calls it a format error.
``qwen25math``
    Qwen2.5-Math's evaluation (``math_equal``): the answer after "final answer is $...$", else the
    last ``boxed`` content, else after "the answer is", else **the last number in the text**; then
    equal strings, option letters, numbers within relative tolerance 1e-4 (a percentage gold also
    matches its hundredth and its hundredfold), tuples element by element, equations by
    ``lhs - rhs``, and expressions equal under ``simplify`` or numerically (relative 1e-4).
    Truncated completions are graded like any other.

Both alternatives are written from the public descriptions of those graders (their papers,
READMEs and documented behaviour), not copied: they reproduce the decisions that matter (what is
extracted, what counts as equal, the tolerance), not every string rule; docs/evaluation.md has the
measured disagreement between all three on real model outputs.
"""

from __future__ import annotations

import math
import re

from ssp.reward.math_answer import NO_ANSWER, UNCLOSED_THINK, answer_region, extract_boxed, words_to_number

# grader -> (pool target "module:function", does it grade truncated completions?)
GRADERS: dict[str, tuple[str, bool]] = {
    "ssp": ("ssp.reward.math_correctness:score_item", False),
    "deepscaler": ("ssp.reward.graders:deepscaler_item", False),
    "qwen25math": ("ssp.reward.graders:qwen25math_item", True),
}


# --- Hendrycks MATH normalisation (both alternatives start from it) -------------------------------

_FRAC_SHORT = re.compile(r"\\frac(\d)(\d)")
_FRAC_HALF = re.compile(r"\\frac(\d)\{")
_SQRT_SHORT = re.compile(r"\\sqrt(\w)")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\}")


def hendrycks_strip(s: str) -> str:
    """The MATH dataset's answer normalisation: layout commands, degrees, dollars, a trailing
    ``\\text{ unit}``, leading zeros of decimals, a short ``k =`` prefix, short fracs and sqrts,
    spaces, ``0.5`` -> ``\\frac{1}{2}`` and ``a/b`` -> ``\\frac{a}{b}``."""
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac").replace("\\left", "").replace("\\right", "")
    s = (
        s.replace("^{\\circ}", "")
        .replace("^\\circ", "")
        .replace("\\$", "")
        .replace("\\%", "")
        .replace("%", "")
    )
    if "\\text{ " in s:
        s = s.split("\\text{ ")[0]
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if s.startswith("."):
        s = "0" + s
    parts = s.split("=")
    if len(parts) == 2 and len(parts[0].strip()) <= 2:
        s = parts[1]
    s = _SQRT_SHORT.sub(r"\\sqrt{\1}", s)
    s = s.replace(" ", "")
    s = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_HALF.sub(r"\\frac{\1}{", s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    if re.fullmatch(r"-?\d+/\d+", s):
        a, b = s.split("/")
        s = f"\\frac{{{a}}}{{{b}}}"
    return s


def _sympy(latex: str):
    from latex2sympy2_extended import latex2sympy

    return latex2sympy(latex)


# --- rllm / DeepScaleR ---------------------------------------------------------------------------

_PRM_UNITS = re.compile(
    r"\s*(?:degree|cm|centimeter|meter|mile|second|minute|hour|day|week|month|year|foot|feet|inch|yard)"
    r"(?:e?s)?\s*$"
)


def _prm_normalise(s: str) -> str:
    """PRM800K-style normalisation: text wrappers out, units words, percent, dollars, degrees,
    thousands commas and spaces removed, lower case."""
    s = _TEXT_WRAP.sub(r"\1", s)
    s = s.replace("\\%", "").replace("%", "").replace("\\$", "").replace("$", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\left", "").replace("\\right", "")
    s = s.replace("dfrac", "frac").replace("tfrac", "frac")
    s = _PRM_UNITS.sub("", s)
    s = re.sub(r"(\d),(\d{3})(?!\d)", r"\1\2", s)
    s = s.strip().rstrip(".").replace(" ", "").lower()
    if re.fullmatch(r"-?\d+\.0+", s):
        s = s.split(".")[0]
    return s


def _split_tuple(s: str) -> list[str]:
    if len(s) > 2 and s[0] in "([" and s[-1] in ")]" and "," in s:
        return [p.strip() for p in s[1:-1].split(",")]
    return [s]


def _is_int(s: str) -> bool:
    return re.fullmatch(r"-?\d+", s) is not None


def _is_frac(s: str) -> bool:
    return (
        re.fullmatch(r"-?\\frac\{-?\d+\}\{\d+\}", s) is not None or re.fullmatch(r"-?\d+/\d+", s) is not None
    )


def _sympy_equal(gold: str, given: str) -> bool:
    letters = set(re.findall(r"(?<!\\)\b[a-z]\b", gold + " " + given))
    if len(letters) > 2:  # PRM800K's should_allow_eval: no simplify over many unknowns
        return False
    try:
        difference = _sympy(gold) - _sympy(given)
        return bool(difference == 0 or difference.simplify() == 0)
    except Exception:  # noqa: BLE001 - an unparseable side is not equal
        return False


def _deepscaler_equal(gold: str, given: str) -> bool:
    if hendrycks_strip(gold) == hendrycks_strip(given):  # grade_answer_mathd
        return True
    g, a = _prm_normalise(gold), _prm_normalise(given)
    if g == a:
        return True
    if not g or not a:
        return False
    gs, as_ = _split_tuple(g), _split_tuple(a)
    if len(gs) != len(as_) or (len(gs) > 1 and (g[0] != a[0] or g[-1] != a[-1])):
        return False
    for ge, ae in zip(gs, as_, strict=True):
        if _is_frac(ge) and _is_frac(ae):  # unreduced fractions are not accepted
            if ge != ae:
                return False
        elif _is_int(ge) != _is_int(ae):  # an integer gold needs an integer answer
            return False
        elif ge != ae and not _sympy_equal(ge, ae):
            return False
    return True


def deepscaler_item(item: tuple[str, str]) -> tuple[float | None, str]:
    """(gold, completion) -> (score, why no answer): the rllm / DeepScaleR protocol."""
    gold, completion = item
    region = answer_region(completion)
    if region is None:
        return 0.0, UNCLOSED_THINK
    answer = extract_boxed(region)
    if answer is None:
        return 0.0, NO_ANSWER
    gold = extract_boxed(gold) or gold
    return (1.0 if _deepscaler_equal(gold, answer) else 0.0), ""


# --- Qwen2.5-Math --------------------------------------------------------------------------------

_LAST_NUMBER = re.compile(r"-?\d*\.?\d+")
_FINAL_DOLLAR = re.compile(r"final answer is \$(.*?)\$\. I hope", re.DOTALL)
_QWEN_UNITS = re.compile(
    r"\s*\\?(?:text\{\s*)?(?:units?|cm|meters?|inches|inch|feet|degrees?|dollars?|hours?|minutes?|seconds?|"
    r"days?|years?|mph|km|kg)\}?\s*$"
)


def qwen25math_extract(text: str) -> str:
    """The answer Qwen2.5-Math's evaluation reads from a completion ("" for none)."""
    if m := _FINAL_DOLLAR.search(text):
        return m.group(1).strip()
    if "boxed" in text:
        boxed = extract_boxed(text)
        if boxed is not None:
            return boxed
    if "he answer is" in text:
        return text.split("he answer is")[-1].strip().split("\n")[0].strip().rstrip(".").strip("$ ")
    numbers = _LAST_NUMBER.findall(text.replace(",", ""))
    return numbers[-1] if numbers else ""


def _qwen_strip(s: str) -> str:
    s = words_to_number(s) or s
    s = _TEXT_WRAP.sub(r"\1", s)
    s = _QWEN_UNITS.sub("", s)
    s = hendrycks_strip(s).rstrip(".")
    return s


def _number(s: str) -> float | None:
    s = s.replace(",", "").replace("\\%", "").replace("%", "").replace("$", "")
    try:
        return float(s)
    except ValueError:
        frac = re.fullmatch(r"(-?)\\frac\{(-?\d+)\}\{(\d+)\}", s)
        if frac and int(frac.group(3)):
            return (-1 if frac.group(1) else 1) * int(frac.group(2)) / int(frac.group(3))
        return None


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-4)


def qwen25math_equal(prediction: str, reference: str) -> bool:
    """Qwen2.5-Math's ``math_equal`` as described (module docstring)."""
    if prediction.strip().lower() == reference.strip().lower():
        return True
    if reference.strip() in list("ABCDE"):
        letter = re.sub(r"[^A-E]", "", prediction.upper())
        return letter[-1:] == reference.strip()
    pred, ref = _qwen_strip(prediction), _qwen_strip(reference)
    if pred == ref:
        return True
    p, r = _number(pred), _number(ref)
    if p is not None and r is not None:
        return any(_close(p, x) for x in (r / 100, r, r * 100))
    if not pred:
        return False
    ps, rs = _split_tuple(pred), _split_tuple(ref)
    if len(ps) > 1 or len(rs) > 1:
        return len(ps) == len(rs) and all(qwen25math_equal(a, b) for a, b in zip(ps, rs, strict=True))
    if pred.count("=") == 1 and ref.count("=") == 1:
        pred, ref = "({})-({})".format(*pred.split("=")), "({})-({})".format(*ref.split("="))
    elif pred.count("=") == 1 and len(pred.split("=")[0].strip()) <= 2 and "=" not in ref:
        pred = pred.split("=")[1]
    try:
        a, b = _sympy(pred), _sympy(ref)
        if a == b or (a - b).simplify() == 0:
            return True
        return _close(float(a.evalf()), float(b.evalf()))
    except Exception:  # noqa: BLE001 - unparseable or not a number: not equal
        return False


def qwen25math_item(item: tuple[str, str]) -> tuple[float | None, str]:
    """(gold, completion) -> (score, why no answer): the Qwen2.5-Math protocol."""
    gold, completion = item
    answer = qwen25math_extract(completion)
    if not answer:
        return 0.0, NO_ANSWER
    return (1.0 if qwen25math_equal(answer, gold) else 0.0), ""


def warm_up() -> None:
    """Run once in each pool worker: import the parser before items are timed."""
    assert deepscaler_item(("\\frac{1}{2}", "\\boxed{0.5}"))[0] == 1.0, "the deepscaler grader does not work"
    assert qwen25math_item(("\\frac{1}{2}", "so 0.5"))[0] == 1.0, "the qwen25math grader does not work"
