"""Final-answer extraction: the last balanced ``\\boxed{}``, and the string form answers are compared in."""

import pytest

from reward.math_answer import extract_boxed, normalise


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
    "answer, expected",
    [(" 12 ", "12"), ("$12$.", "12"), ("x = -5", "-5"), ("\\frac{1}{ 2 }", "\\frac{1}{2}")],
)
def test_normalise(answer, expected):
    assert normalise(answer) == expected
