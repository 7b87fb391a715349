"""The unbiased Pass@k estimator against brute-force enumeration, and its aggregation."""

import itertools
import math
from fractions import Fraction

import pytest

from ssp.sampling.pass_at_k import pass_at_k, per_domain


@pytest.mark.parametrize("n", range(1, 8))
def test_matches_brute_force_enumeration(n):
    """pass@k is the share of k-subsets of the n samples that contain a correct one."""
    for c in range(n + 1):
        samples = [1] * c + [0] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(samples, k))
            exact = sum(any(s) for s in subsets) / len(subsets)
            assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12), (n, c, k)


@pytest.mark.parametrize("n, c, k", [(1000, 500, 100), (1024, 3, 512), (2000, 1, 1), (5000, 4999, 64)])
def test_stable_for_large_n(n, c, k):
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-9, abs=1e-12)


def test_pass_at_1_is_the_mean_accuracy():
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8)


@pytest.mark.parametrize("n, c, k", [(4, 5, 1), (4, -1, 1), (4, 2, 0), (4, 2, 5)])
def test_invalid_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_per_domain_means_over_problems():
    table = per_domain([("algebra", 4, 0), ("algebra", 4, 4), ("counting", 4, 2)], ks=[1, 2])
    assert table["algebra"] == {"pass@1": pytest.approx(0.5), "pass@2": pytest.approx(0.5)}
    assert table["counting"]["pass@2"] == pytest.approx(1 - 1 / 6)  # 1 - C(2,2)/C(4,2)
    assert table["all"]["pass@1"] == pytest.approx((0 + 1 + 0.5) / 3)
    assert list(table)[-1] == "all"
