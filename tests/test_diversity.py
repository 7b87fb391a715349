"""Diversity selection on a hand-made pool whose routes are known: three ways to solve one problem,
written several times each with small rewordings. Expected picks are read off the pool by hand."""

import statistics

import pytest

from ssp.data_pipeline.diversity import (
    correct_pool,
    divergence,
    mean_pairwise_divergence,
    pick,
    select,
    shingles,
)

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


def test_solutions_per_problem_applies_to_a_corpus_one_brings(tmp_path):
    """data.source=files with 4 solutions per problem and data.solutions_per_problem=2: the two
    kept are the most different (the two rewordings of one route are not both kept); unset keeps
    all; on source=build the key is refused, naming the teacher's key."""
    import json

    from ssp.config.recipe import load_recipe
    from ssp.core.errors import RecipeError
    from ssp.stages.data_files import file_splits

    from .conftest import TINY

    route_a = "Subtract 3 from both sides to get 2x = 8, then divide by 2: x = 4. \\boxed{4}"
    route_a2 = "Subtract 3 from both sides to get 2x = 8, then divide by two: x = 4. \\boxed{4}"
    route_b = "Try x = 4: 2 * 4 + 3 = 11, which matches, so the answer is \\boxed{4}"
    route_c = "Write 11 - 3 = 8 as twice x; half of 8 is 4, so \\boxed{4}"
    row = {"id": "1", "domain": "algebra", "problem": "Solve 2x + 3 = 11.", "answer": "4"}
    files = {}
    for name, r in (("sft", {**row, "solutions": [route_a, route_a2, route_b, route_c]}), ("eval", row)):
        files[name] = tmp_path / f"{name}.jsonl"
        files[name].write_text(json.dumps(r) + "\n")
    base = [
        "data.source=files",
        "data.domains=[algebra]",
        f"data.train_file={files['sft']}",
        f"data.eval_file={files['eval']}",
        f"data.probe_files.algebra={files['eval']}",
    ]
    kept = file_splits(load_recipe(TINY, [*base, "data.solutions_per_problem=2"]))["sft"][0]["solutions"]
    assert len(kept) == 2 and not {route_a, route_a2} <= set(kept)
    assert file_splits(load_recipe(TINY, [*base, "data.solutions_per_problem=null"]))["sft"][0][
        "solutions"
    ] == [
        route_a,
        route_a2,
        route_b,
        route_c,
    ]
    with pytest.raises(RecipeError, match="data.solutions_per_problem: does not apply to source=build"):
        load_recipe(
            TINY,
            ["data.source=build", "data.sources=[{name: s, path: x.jsonl}]", "data.solutions_per_problem=2"],
        )
