"""Final-answer extraction and comparison used by the SFT stage's held-out check."""

import pytest

from reward.math_answer import answers_match, extract_boxed, is_correct


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so \\boxed{12}", "12"),
        ("first \\boxed{1} then \\boxed{2}", "2"),  # the last one counts
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # nested braces
        ("\\boxed{ -7 }", "-7"),
        ("no answer here", None),
        ("\\boxed{12", None),  # unbalanced
        ("\\boxed{3} and \\boxed{4", "3"),  # last one unbalanced: fall back to an earlier one
        ("", None),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    "gold, pred, ok",
    [
        ("12", "12", True),
        ("12", " 12 ", True),
        ("-5", "x = -5", True),
        ("0.5", "\\frac{1}{2}", True),  # via math-verify
        ("12", "13", False),
        ("12", None, False),
        ("12", "\\frac{", False),  # garbage scores 0, never raises
    ],
)
def test_answers_match(gold, pred, ok):
    assert answers_match(gold, pred) is ok


def test_is_correct_on_a_solution():
    assert is_correct("21", "Sum: 26 + 23 + 14 = 63. 63 / 3 = 21. \\boxed{21}")
    assert not is_correct("21", "63 / 3 = 21.")  # no boxed answer, no credit
