"""math_correctness and format: answer equivalence, untrusted input, registry, no leaks."""

import multiprocessing
import time

import pytest

from reward import get_reward, known_rewards
from reward.math_answer import words_to_number


@pytest.fixture(scope="module")
def math_reward():
    reward = get_reward("math_correctness", timeout=4.0, workers=2)
    yield reward
    reward.close()


EQUIVALENCE = [
    # fractions and decimals
    ("1/2", r"\boxed{0.5}", 1.0),
    (r"\frac{3}{4}", r"\boxed{0.75}", 1.0),
    ("0.75", r"\boxed{\frac{3}{4}}", 1.0),
    (r"\dfrac{1}{2}", r"\boxed{\tfrac12}", 1.0),
    ("1,000", r"\boxed{1000}", 1.0),
    (r"\pi", r"\boxed{3.14159}", 0.0),  # a decimal approximation is not the exact answer
    # equivalent radicals
    (r"\sqrt{8}", r"\boxed{2\sqrt{2}}", 1.0),
    (r"\frac{\sqrt{3}}{3}", r"\boxed{\frac{1}{\sqrt{3}}}", 1.0),
    # intervals
    ("[0,1)", r"\boxed{[0, 1)}", 1.0),
    ("[0,1)", r"\boxed{[0,1]}", 0.0),
    (r"(-\infty, 2]", r"\boxed{(-\infty,2]}", 1.0),
    # sets and tuples
    (r"\{1,2,3\}", r"\boxed{\{3,2,1\}}", 1.0),  # sets are unordered
    ("(1,2)", r"\boxed{(1, 2)}", 1.0),
    ("(1,2)", r"\boxed{(2, 1)}", 0.0),  # tuples are ordered
    # negative numbers
    ("-4", r"\boxed{-4}", 1.0),
    ("-4", r"\boxed{4}", 0.0),
    # units
    ("5", r"\boxed{5\text{ cm}}", 1.0),
    ("30", r"\boxed{30^\circ}", 1.0),
    (r"10\%", r"\boxed{10}", 1.0),
    # several boxed answers: the last one counts
    ("2", r"first \boxed{1}, finally \boxed{2}", 1.0),
    ("1", r"first \boxed{1}, finally \boxed{2}", 0.0),
    # answers in words
    ("5", r"\boxed{\text{five}}", 1.0),
    ("21", r"\boxed{twenty-one}", 1.0),
    (r"\text{Yes}", r"\boxed{\text{yes}}", 1.0),
    (r"\text{(B)}", r"\boxed{B}", 1.0),
    # algebraic equivalence and equations
    ("x^2+2x+1", r"\boxed{(x+1)^2}", 1.0),
    ("3", r"so x = \boxed{3}", 1.0),
    ("x=3", r"\boxed{3}", 1.0),
    # no boxed answer: math-verify's own extraction of the last answer
    ("3", "The answer is 3.", 1.0),
    ("3", "no answer at all", 0.0),
]


@pytest.mark.parametrize("gold, completion, expected", EQUIVALENCE)
def test_answer_equivalence(math_reward, gold, completion, expected):
    assert math_reward([completion], answer=[gold]) == [expected]


def test_whole_table_in_one_batch(math_reward):
    """The same table as one parallel batch: order is kept across workers."""
    golds, completions, expected = zip(*EQUIVALENCE, strict=True)
    assert math_reward(list(completions), answer=list(golds)) == list(expected)


def test_chat_message_completions(math_reward):
    chat = [
        [{"role": "assistant", "content": r"\boxed{7}"}],
        [{"role": "assistant", "content": r"\boxed{8}"}],
    ]
    assert math_reward(chat, answer=["7", "7"]) == [1.0, 0.0]


def test_unparseable_gold_cannot_be_scored(math_reward):
    assert math_reward([r"\boxed{1}"], answer=[""]) == [None]


@pytest.mark.parametrize(
    "name, completion",
    [
        ("empty", ""),
        ("huge", "blah " * 2_000_000 + r"\boxed{1}"),
        ("lone surrogates", "\udcff\udcfe" + r"\boxed{1}"),
        ("invalid utf-8 bytes", b"\xff\xfe\xfa " + rb"\boxed{1}"),
        ("unbalanced braces", r"\boxed{1" + "}" * 3 + "{" * 1000),
        ("many unclosed boxes", r"\boxed{" * 100_000 + "1"),
        ("deeply nested boxes", r"\boxed{" * 2000 + "1" + "}" * 2000),
        ("a huge boxed answer", r"\boxed{" + "1+" * 100_000 + "1}"),
        ("latex that hangs sympy", r"\boxed{" + "9^" * 40 + "9}"),
        ("a giant factorial", r"\boxed{(10^{10^{10}})!}"),
    ],
)
def test_untrusted_output_gets_a_score_quickly(math_reward, name, completion):
    start = time.monotonic()
    score = math_reward([completion], answer=["1"])
    assert score in ([0.0], [1.0]), (name, score)
    assert time.monotonic() - start < 4.0 + 3.0, f"{name}: the hard timeout did not hold"


def test_hung_item_kills_only_its_worker_and_the_batch_still_scores(math_reward):
    hang = r"\boxed{" + "9^" * 40 + "9}"
    before = math_reward.pool.restarts
    scores = math_reward([r"\boxed{1}", hang, r"\boxed{2}", r"\boxed{3}"], answer=["1", "1", "2", "4"])
    assert scores == [1.0, 0.0, 1.0, 0.0]
    assert math_reward.pool.restarts == before + 1 and math_reward.timeouts >= 1


def test_missing_column_is_named(math_reward):
    with pytest.raises(KeyError, match="needs the dataset column 'answer'"):
        math_reward([r"\boxed{1}"], solution=["1"])


def test_no_worker_outlives_close():
    reward = get_reward("math_correctness", workers=2)
    assert reward([r"\boxed{1}"], answer=["1"]) == [1.0]
    workers = [w.proc for w in reward.pool._workers]
    assert all(p.is_alive() for p in workers)
    reward.close()
    assert not any(p.is_alive() for p in workers)
    assert not [c for c in multiprocessing.active_children() if c in workers]


def test_registry_errors():
    assert {"math_correctness", "code_tests", "format"} <= set(known_rewards())
    with pytest.raises(KeyError, match="unknown reward 'math_corectness'; known rewards: code_tests, format"):
        get_reward("math_corectness")
    with pytest.raises(TypeError, match="reward 'format'"):
        get_reward("format", tail_charz=5)


@pytest.mark.parametrize(
    "completion, expected",
    [
        (r"Steps... so the answer is \boxed{12}.", 1.0),
        (r"\boxed{12} and then a long ramble " + "x" * 500, 0.0),  # the answer is not at the end
        (r"\boxed{}", 0.0),
        (r"\boxed{12", 0.0),
        ("12", 0.0),
        ([{"role": "assistant", "content": r"\boxed{3}"}], 1.0),
    ],
)
def test_format_reward(completion, expected):
    assert get_reward("format")([completion]) == [expected]


@pytest.mark.parametrize(
    "text, number",
    [
        ("five", "5"),
        (r"\text{Twenty-one}", "21"),
        ("negative three", "-3"),
        ("zero", "0"),
        ("ninety nine", "99"),
        ("one hundred", None),
        ("fivey", None),
        ("5", None),
    ],
)
def test_number_words(text, number):
    assert words_to_number(text) == number


def test_recipe_reward_specs():
    from omegaconf import OmegaConf

    from launch.errors import FieldError, RecipeError
    from reward.config import RewardSpec, build_rewards

    yaml = "- {name: math_correctness, weight: 1.0, correctness: true}\n- {name: format, weight: 0.1}\n"
    specs = [
        OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RewardSpec), s))
        for s in OmegaConf.create(yaml)
    ]
    funcs, weights, correctness = build_rewards(specs, where="rl.rewards")
    assert [f.__name__ for f in funcs] == ["math_correctness", "format"] and weights == [1.0, 0.1]
    assert correctness == 0
    with pytest.raises(
        FieldError, match=r"name: unknown reward 'math_corectness'; known rewards: code_tests"
    ):
        RewardSpec(name="math_corectness")
    with pytest.raises(RecipeError, match=r"rl.rewards\[0\]: reward 'format': .*tail_charz"):
        build_rewards([RewardSpec(name="format", options={"tail_charz": 3})], where="rl.rewards")
    with pytest.raises(RecipeError, match="only one reward may set correctness"):
        build_rewards([RewardSpec(correctness=True), RewardSpec(correctness=True)])
