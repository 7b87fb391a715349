"""The built-in tiny task: deterministic, diverse (distinct strategies per problem), correct."""

import math
import random
import re

import pytest

from ssp.data_pipeline.tiny.problems import GENERATORS, generate
from ssp.reward.math_answer import extract_boxed

DOMAINS = list(GENERATORS)


def test_at_least_four_domains_two_types_each():
    assert len(DOMAINS) >= 4
    assert all(len(types) >= 2 for types in GENERATORS.values())


@pytest.mark.parametrize("domain", DOMAINS)
def test_generator_is_deterministic(domain):
    a, b = generate(domain, 50, seed=7), generate(domain, 50, seed=7)
    assert a == b
    assert generate(domain, 50, seed=8) != a


@pytest.mark.parametrize("domain", DOMAINS)
def test_each_problem_has_distinct_strategies_all_boxing_the_answer(domain):
    for p in generate(domain, 200, seed=3):
        strategies = [s.strategy for s in p.solutions]
        assert len(set(strategies)) == len(strategies) >= 2, p
        assert len({s.text for s in p.solutions}) == len(p.solutions)
        for s in p.solutions:
            assert extract_boxed(s.text) == p.answer, (p.problem, s)
            assert len(s.text.split()) < 60, "solutions must stay short for CPU sampling"


def test_every_problem_type_has_different_strategies_across_the_corpus():
    """Diversity is per type too: each type's strategies produce genuinely different texts."""
    rng = random.Random(0)
    for types in GENERATORS.values():
        for make in types:
            p = make(rng)
            texts = [s.text for s in p.solutions]
            # Different strategies differ in more than a few words.
            a, b = set(texts[0].split()), set(texts[1].split())
            assert len(a ^ b) >= 4, (make.__name__, texts)


def test_problems_are_distinct_and_exclusion_is_honoured():
    first = generate("counting", 100, seed=1)
    texts = {p.problem for p in first}
    assert len(texts) == 100
    second = generate("counting", 100, seed=2, exclude=texts)
    assert texts.isdisjoint(p.problem for p in second)


def test_answers_are_right():
    """Recompute answers independently from the problem text, for every type."""
    for p in (
        generate("algebra", 100, seed=5)
        + generate("number_theory", 100, seed=5)
        + generate("counting", 100, seed=5)
        + generate("statistics", 100, seed=5)
    ):
        nums = [int(n) for n in re.findall(r"-?\d+", p.problem.replace(" - ", " -"))]
        answer = int(p.answer)
        if p.kind == "linear_equation":
            a, b, c = nums
            assert a * answer + b == c
        elif p.kind == "one_step_equation":  # "x + a = b", "x - a = b" (read as x, -a, b) or "ax = b"
            if "x + " in p.problem or "x - " in p.problem:
                a, b = nums
                assert answer + a == b
            else:
                a, b = nums
                assert a * answer == b
        elif p.kind == "gcd":
            assert math.gcd(*nums) == answer
        elif p.kind == "remainder":
            assert nums[0] % nums[1] == answer
        elif p.kind == "choose":
            k, n = nums  # "... can K items be chosen from a group of N?", "... to pick K of the N items ...?"
            assert math.comb(n, k) == answer
        elif p.kind == "product_rule":
            a, b = nums
            assert a * b == answer
        elif p.kind == "multiples":
            if "multiples of" in p.problem:  # "How many multiples of K are there from 1 to N?"
                k, _, n = nums
            else:  # "How many of the numbers 1 to N are divisible by K?"
                _, n, k = nums
            assert n // k == answer
        elif p.kind == "mean":
            assert sum(nums) == answer * len(nums)
        elif p.kind == "median":
            assert sorted(nums)[len(nums) // 2] == answer
        elif p.kind == "mode":
            assert max(nums, key=nums.count) == answer and nums.count(answer) == 2
        else:
            raise AssertionError(f"untested kind {p.kind}")
