"""Uncertainty over seeds: the mean and a 95% Student-t interval, the unit every comparison uses.

With n seeds the half-width is t(0.975, n-1) * sd / sqrt(n): with 3 seeds t = 4.30, not 1.96,
so three seeds give wide intervals, honestly. One seed gives no interval (``ci95`` None).
"""

from __future__ import annotations

import math
import statistics
from typing import Any


def t95(n: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1))


def interval(xs: list[float]) -> dict[str, Any]:
    """Mean, 95% t-interval half-width over seeds (None for one value), the values."""
    n = len(xs)
    half = t95(n) * statistics.stdev(xs) / math.sqrt(n) if n > 1 else None
    return {"mean": statistics.mean(xs), "ci95": half, "n": n, "values": xs}
