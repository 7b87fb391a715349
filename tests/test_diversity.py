"""Diversity selection on a hand-made pool whose routes are known: three ways to solve one problem,
written several times each with small rewordings. Expected picks are read off the pool by hand."""

import statistics

import pytest

from data_pipeline.diversity import correct_pool, divergence, mean_pairwise_divergence, pick, select, shingles

ROUTE_A = [  # factor the quadratic
    "Factor x^2 - 5x + 6 as (x - 2)(x - 3), so the roots are 2 and 3 and their sum is \\boxed{5}.",
    "We factor x^2 - 5x + 6 as (x - 2)(x - 3), so the roots are 2 and 3 and their sum is \\boxed{5}.",
    "Factor x^2 - 5x + 6 as (x - 3)(x - 2), so the roots are 3 and 2 and the sum is \\boxed{5}.",
]
ROUTE_B = [  # Vieta
    "By Vieta's formulas the sum of the roots of a x^2 + b x + c is -b/a, here 5/1 = \\boxed{5}.",
    "Using Vieta's formulas, the sum of the roots of a x^2 + b x + c equals -b/a, which is \\boxed{5}.",
]
ROUTE_C = [  # quadratic formula
    "The quadratic formula gives x = (5 +- sqrt(25 - 24)) / 2 = 3 or 2; adding them: \\boxed{5}.",
]
POOL = ROUTE_A + ROUTE_B + ROUTE_C
ROUTE = {**dict.fromkeys(range(3), "A"), 3: "B", 4: "B", 5: "C"}


def test_divergence_is_one_minus_jaccard_of_word_trigrams():
    a, b = shingles("one two three four"), shingles("two three four five")
    # trigrams {1-2-3, 2-3-4} vs {2-3-4, 3-4-5}: one shared of three
    assert divergence(a, b) == pytest.approx(1 - 1 / 3)
    assert divergence(a, a) == 0.0


def test_maxmin_keeps_one_solution_per_route():
    chosen = select(POOL, 3)
    assert sorted(ROUTE[i] for i in chosen) == ["A", "B", "C"]


def test_maxmin_beats_random_m_on_the_divergence_it_maximises():
    ours = mean_pairwise_divergence([POOL[i] for i in select(POOL, 3)])
    randoms = [
        mean_pairwise_divergence([POOL[i] for i in select(POOL, 3, "random", seed=s)]) for s in range(50)
    ]
    assert ours > statistics.mean(randoms) and ours >= max(randoms)


def test_pick_keeps_at_most_m_correct_finished_distinct_samples():
    samples = [{"text": t, "score": 1.0, "finish_reason": "stop"} for t in POOL]
    samples += [
        {
            "text": "Wrong: \\boxed{6}, by a completely different and long argument about cubes.",
            "score": 0.0,
            "finish_reason": "stop",
        },
        {
            "text": "Truncated but parsed \\boxed{5} with unusual words never seen elsewhere",
            "score": 1.0,
            "finish_reason": "length",
        },
        {"text": POOL[5], "score": 1.0, "finish_reason": "stop"},  # an exact repeat
    ]
    for m in (1, 2, 3, 4):
        kept = pick(correct_pool(samples), m)
        assert len(kept) == m and all(s["text"] in POOL for s in kept)
        assert len({s["text"] for s in kept}) == m
    assert len(pick(correct_pool(samples), 10, "all")) == 6
    assert len(pick(correct_pool(samples), 2, "random", seed=3)) == 2
    with pytest.raises(ValueError, match="unknown selection method 'best'"):
        select(POOL, 2, "best")
