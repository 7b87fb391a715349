"""Seeded generator of short competition-style math problems with several solution strategies.

Each problem *type* knows at least two genuinely different ways to reach its answer (for
example Euclid's algorithm versus prime factorisation for a gcd). A multi-solution SFT corpus
writes several of them per problem: this is the "spectrum" of correct reasoning paths that
SSP's diversity-first SFT is meant to keep alive. Solutions are a few dozen tokens and end in
``\\boxed{answer}`` so that sampling on a CPU stays fast.

    rng = random.Random(0)
    p = make_problem("number_theory", rng)
    p.problem, p.answer, [s.strategy for s in p.solutions]
    # ('Find the greatest common divisor of 84 and 60.', '12', ['euclid', 'factorisation'])

Numbers are kept small (two- and three-digit) so that a 1M-parameter model can learn some of
the arithmetic in minutes but not all of it: the trained tiny model must stay clearly below
100% so that probing, fusion and RL have something left to improve.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Solution:
    strategy: str  # name of the reasoning path, e.g. "euclid"
    text: str  # step-by-step solution ending in \boxed{answer}


@dataclass(frozen=True)
class Problem:
    domain: str
    kind: str
    problem: str
    answer: str
    solutions: tuple[Solution, ...]


def _boxed(answer: int | str) -> str:
    return f"\\boxed{{{answer}}}"


def _signed(b: int) -> str:
    """'+ 5' or '- 5' for writing 'ax + b'."""
    return f"+ {b}" if b >= 0 else f"- {-b}"


# ---------------------------------------------------------------- algebra
def linear_equation(rng: random.Random) -> Problem:
    a, x = rng.randint(2, 9), rng.randint(-9, 15)
    b = rng.choice([i for i in range(-20, 21) if i != 0])
    c = a * x + b
    q = f"Solve for x: {a}x {_signed(b)} = {c}."
    move = f"Subtract {b} from both sides" if b > 0 else f"Add {-b} to both sides"
    lo = x - 1
    return Problem(
        "algebra",
        "linear_equation",
        q,
        str(x),
        (
            Solution(
                "inverse_operations",
                f"{move}: {a}x = {c - b}. Divide both sides by {a}: x = {x}. {_boxed(x)}",
            ),
            Solution(
                "formula",
                f"For ax + b = c, x = (c - b) / a = ({c} - ({b})) / {a} = {c - b} / {a} = {x}. {_boxed(x)}",
            ),
            Solution(
                "guess_and_check",
                f"Try x = {lo}: {a}*{lo} {_signed(b)} = {a * lo + b}, not {c}. "
                f"Try x = {x}: {a}*{x} {_signed(b)} = {c}. It works. {_boxed(x)}",
            ),
        ),
    )


def evaluate_quadratic(rng: random.Random) -> Problem:
    a, x = rng.randint(2, 4), rng.randint(1, 6)
    b, c = rng.choice([-6, -5, -4, -3, -2, 2, 3, 4, 5, 6]), rng.randint(-9, 9)
    value = a * x * x + b * x + c
    q = f"If x = {x}, what is {a}x^2 {_signed(b)}x {_signed(c)}?"
    inner = a * x + b
    return Problem(
        "algebra",
        "evaluate_quadratic",
        q,
        str(value),
        (
            Solution(
                "term_by_term",
                f"x^2 = {x * x}. {a}x^2 = {a * x * x}. {b}x = {b * x}. "
                f"Sum: {a * x * x} {_signed(b * x)} {_signed(c)} = {value}. {_boxed(value)}",
            ),
            Solution(
                "horner",
                f"Write it as ({a}x {_signed(b)})x {_signed(c)}. {a}x {_signed(b)} = {inner}. "
                f"{inner}*{x} = {inner * x}. {inner * x} {_signed(c)} = {value}. {_boxed(value)}",
            ),
        ),
    )


# ---------------------------------------------------------------- number theory
def _factor(n: int) -> dict[int, int]:
    out, p = {}, 2
    while p * p <= n:
        while n % p == 0:
            out[p] = out.get(p, 0) + 1
            n //= p
        p += 1
    if n > 1:
        out[n] = out.get(n, 0) + 1
    return out


def _factor_text(f: dict[int, int]) -> str:
    return "*".join(f"{p}^{e}" if e > 1 else str(p) for p, e in sorted(f.items())) or "1"


def gcd(rng: random.Random) -> Problem:
    g = rng.choice([2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 15])
    m, n = rng.sample([i for i in range(2, 13)], 2)
    while math.gcd(m, n) != 1:
        m, n = rng.sample([i for i in range(2, 13)], 2)
    a, b = sorted((g * m, g * n), reverse=True)
    steps, x, y = [], a, b
    while y:
        steps.append(f"{x} = {x // y}*{y} + {x % y}")
        x, y = y, x % y
    fa, fb = _factor(a), _factor(b)
    common = {p: min(e, fb[p]) for p, e in fa.items() if p in fb}
    q = f"Find the greatest common divisor of {a} and {b}."
    return Problem(
        "number_theory",
        "gcd",
        q,
        str(g),
        (
            Solution("euclid", "; ".join(steps) + f". The last nonzero remainder is {g}. {_boxed(g)}"),
            Solution(
                "factorisation",
                f"{a} = {_factor_text(fa)} and {b} = {_factor_text(fb)}. "
                f"Common factors: {_factor_text(common)} = {g}. {_boxed(g)}",
            ),
        ),
    )


def remainder(rng: random.Random) -> Problem:
    m = rng.randint(3, 12)
    n = rng.randint(30, 250)
    r, qt = n % m, n // m
    big = (n // (10 * m)) * 10 * m  # a round multiple of m to split off first
    rest = n - big
    q = f"What is the remainder when {n} is divided by {m}?"
    split = (
        f"{n} = {big} + {rest}. {big} = {10 * m}*{big // (10 * m)} is a multiple of {m}. "
        if big
        else f"{n} is less than {10 * m}. "
    )
    return Problem(
        "number_theory",
        "remainder",
        q,
        str(r),
        (
            Solution("division", f"{m}*{qt} = {m * qt}. {n} - {m * qt} = {r}. {_boxed(r)}"),
            Solution(
                "split_multiple",
                split + f"{rest} = {rest // m}*{m} + {rest % m}. The remainder is {r}. {_boxed(r)}",
            ),
        ),
    )


# ---------------------------------------------------------------- counting
_GROUPS = [
    ("students", "a class"),
    ("books", "a shelf"),
    ("cards", "a deck"),
    ("players", "a team"),
    ("songs", "a playlist"),
    ("colours", "a palette"),
    ("toppings", "a menu"),
    ("flowers", "a garden"),
]


def choose(rng: random.Random) -> Problem:
    n, k = rng.randint(4, 20), rng.choice([2, 3, 4])
    items, group = rng.choice(_GROUPS)
    value = math.comb(n, k)
    falling = "*".join(str(n - i) for i in range(k))
    prod = math.perm(n, k)
    q = f"In how many ways can {k} {items} be chosen from {group} of {n}?"
    return Problem(
        "counting",
        "choose",
        q,
        str(value),
        (
            Solution(
                "formula",
                f"C({n},{k}) = {falling} / {math.factorial(k)} = {prod} / {math.factorial(k)} = {value}. "
                f"{_boxed(value)}",
            ),
            Solution(
                "pascal",
                f"C({n},{k}) = C({n - 1},{k - 1}) + C({n - 1},{k}) = {math.comb(n - 1, k - 1)} + "
                f"{math.comb(n - 1, k)} = {value}. {_boxed(value)}",
            ),
        ),
    )


def arrangements(rng: random.Random) -> Problem:
    n, k = rng.randint(4, 15), rng.choice([2, 3])
    who = rng.choice(["runners", "horses", "swimmers", "cyclists"])
    places = ["first", "second", "third"][:k]
    value = math.perm(n, k)
    q = f"{n} {who} race. In how many ways can the {', '.join(places)} places be filled?"
    return Problem(
        "counting",
        "arrangements",
        q,
        str(value),
        (
            Solution(
                "product",
                f"{' then '.join(f'{n - i} choices' for i in range(k))}: "
                f"{'*'.join(str(n - i) for i in range(k))} = {value}. {_boxed(value)}",
            ),
            Solution(
                "choose_then_order",
                f"Choose the {k} who place: C({n},{k}) = {math.comb(n, k)}. Order them: {k}! = "
                f"{math.factorial(k)}. {math.comb(n, k)}*{math.factorial(k)} = {value}. {_boxed(value)}",
            ),
        ),
    )


def handshakes(rng: random.Random) -> Problem:
    n = rng.randint(3, 40)
    value = n * (n - 1) // 2
    if rng.random() < 0.5:
        q = f"At a party {n} people each shake hands with everyone else once. How many handshakes are there?"
    else:
        q = f"In a league of {n} teams every team plays every other team once. How many games are played?"
    terms = " + ".join(str(i) for i in range(n - 1, 0, -1)) if n <= 8 else f"{n - 1} + {n - 2} + ... + 1"
    return Problem(
        "counting",
        "handshakes",
        q,
        str(value),
        (
            Solution(
                "pairs", f"Each one is a pair: {n}*{n - 1} / 2 = {n * (n - 1)} / 2 = {value}. {_boxed(value)}"
            ),
            Solution(
                "sum",
                f"The first meets {n - 1} others, the next {n - 2} new ones, and so on: "
                f"{terms} = {value}. {_boxed(value)}",
            ),
        ),
    )


# ---------------------------------------------------------------- statistics
def mean(rng: random.Random) -> Problem:
    k = rng.choice([3, 4, 5])
    target = rng.randint(5, 40)
    xs = [target + rng.randint(-6, 6) for _ in range(k - 1)]
    xs.append(target * k - sum(xs))
    rng.shuffle(xs)
    total = sum(xs)
    base = xs[0]
    devs = [x - base for x in xs]
    q = f"What is the mean of {', '.join(map(str, xs))}?"
    dev_text = ", ".join(str(d) for d in devs)
    return Problem(
        "statistics",
        "mean",
        q,
        str(target),
        (
            Solution(
                "sum_divide",
                f"Sum: {' + '.join(map(str, xs))} = {total}. {total} / {k} = {target}. {_boxed(target)}",
            ),
            Solution(
                "deviations",
                f"Measure from {base}: deviations {dev_text}, total {sum(devs)}. "
                f"{sum(devs)} / {k} = {sum(devs) // k}. {base} {_signed(sum(devs) // k)} = {target}. {_boxed(target)}",
            ),
        ),
    )


def median(rng: random.Random) -> Problem:
    k = rng.choice([5, 7])
    xs = rng.sample(range(1, 60), k)
    s = sorted(xs)
    med = s[k // 2]
    q = f"What is the median of {', '.join(map(str, xs))}?"
    trims, rest = [], s
    while len(rest) > 1:
        trims.append(f"drop {rest[0]} and {rest[-1]}")
        rest = rest[1:-1]
    return Problem(
        "statistics",
        "median",
        q,
        str(med),
        (
            Solution("sort", f"Sorted: {', '.join(map(str, s))}. The middle value is {med}. {_boxed(med)}"),
            Solution(
                "trim",
                f"Remove the smallest and largest in turn: {'; '.join(trims)}. {med} is left. {_boxed(med)}",
            ),
        ),
    )


GENERATORS: dict[str, list[Callable[[random.Random], Problem]]] = {
    "algebra": [linear_equation, evaluate_quadratic],
    "number_theory": [gcd, remainder],
    "counting": [choose, arrangements, handshakes],
    "statistics": [mean, median],
}
TINY_DOMAINS = list(GENERATORS)


def make_problem(domain: str, rng: random.Random) -> Problem:
    """One problem of ``domain``, its type drawn uniformly."""
    return rng.choice(GENERATORS[domain])(rng)


def generate(domain: str, count: int, seed: int, exclude: set[str] = frozenset()) -> list[Problem]:
    """``count`` distinct problems of ``domain``, none whose text is in ``exclude``.

    Deterministic in (domain, count, seed, exclude). Raises if the domain cannot produce
    that many distinct problems (its space is finite)."""
    rng = random.Random(f"{seed}:{domain}")
    seen, out = set(exclude), []
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise ValueError(f"domain {domain!r} ran out of distinct problems after {len(out)} of {count}")
        p = make_problem(domain, rng)
        if p.problem in seen:
            continue
        seen.add(p.problem)
        out.append(p)
    return out
