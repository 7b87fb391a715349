"""Final-answer extraction: the last balanced ``\\boxed{}``, and the string form answers are compared in."""

import pytest

from ssp.reward.math_answer import extract_boxed, final_answer, normalise


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


@pytest.mark.parametrize(
    "text, answer, missing",
    [
        ("so \\boxed{12}", "12", ""),
        ("<think>\\boxed{1}</think>so \\boxed{2}", "2", ""),  # the reasoning is never graded
        ("the template opened it\n</think>\n\\boxed{2}", "2", ""),  # only the closing tag
        ("<think>\\boxed{1}</think>I am done.", None, "no_answer"),
        ("<think>so the answer is \\boxed{1}", None, "unclosed_think"),
        ("Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.", "\\frac{1}{2}", ""),
        ("2 + 3 = 5\n#### 5", "5", ""),
        ("Answer: (B)", "(B)", ""),
        ("perhaps the answer is 25. But let me verify", None, "no_answer"),
        ("The answer is 18.\n\nQuestion: Tom has 3 apples", "18", ""),  # a base model running on
        ("x = 3, y = 4, so 7", None, "no_answer"),  # the last number is not an answer
        ("\\fbox{7}", "7", ""),
        ("so $\\boxed 9$", "9", ""),  # a box without braces, as some MATH solutions write it
        ("", None, "no_answer"),
        ("Answer: Let's think step by step.", None, "no_answer"),  # a sentence is not an answer
        ("Please use \\boxed{} to highlight the final answer.", None, "no_answer"),  # an empty box
        # a closing Answer: section of one finished sentence: its one number
        ("Answer:\nIt will take Max 215 minutes to watch them.", "215", ""),
        ("Answer:\nThe difference is 50 - 5 = 45 chairs.", "45", ""),
        ("Answer:\nTerry spends $75.00 in 30 days.", None, "no_answer"),  # which number?
        ("Answer:\nIt takes 215 minutes. Then he", None, "no_answer"),  # a second sentence
    ],
)
def test_final_answer_policy(text, answer, missing):
    found = final_answer(text)
    assert (found.text, found.missing) == (answer, missing)
