"""Seeded generator of short competition-style math problems with several solution strategies.

Each problem *type* knows at least two genuinely different ways to reach its answer (for
example Euclid's algorithm versus prime factorisation for a gcd). A multi-solution SFT corpus
writes several of them per problem: this is the "spectrum" of correct reasoning paths that
SSP's diversity-first SFT is meant to keep alive. Solutions are a few dozen tokens and end in
``\\boxed{answer}`` so that sampling on a CPU stays fast.

    rng = random.Random(0)
    p = make_problem("number_theory", rng)
    p.problem, p.answer, [s.strategy for s in p.solutions]
    # ('What is the remainder when 36 is divided by 9?', '0', ['division', 'split_multiple', 'count_by'])

Numbers are kept small (mostly one- and two-digit) so that a 1M-parameter model learns a fair
share of the arithmetic in minutes but not all of it: the trained tiny model sits around 30-40%
greedy accuracy, where groups of RL samples are often mixed, and clearly below 100%, so that
probing, fusion and RL have something left to improve. Each type has several wordings, so every
domain has hundreds of distinct problems beyond the SFT split for a fresh RL pool
(docs/tiny_task.md has the counts).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from ssp.data_pipeline.tiny.code import CODE_GENERATORS
from ssp.data_pipeline.tiny.problem import Problem, Solution


def _boxed(answer: int | str) -> str:
    return f"\\boxed{{{answer}}}"


def _signed(b: int) -> str:
    """'+ 5' or '- 5' for writing 'ax + b'."""
    return f"+ {b}" if b >= 0 else f"- {-b}"


# ---------------------------------------------------------------- algebra
def linear_equation(rng: random.Random) -> Problem:
    a, x = rng.randint(2, 5), rng.randint(1, 9)
    b = rng.choice([i for i in range(-9, 10) if i != 0])
    c = a * x + b
    eq = f"{a}x {_signed(b)} = {c}"
    q = rng.choice([f"Solve for x: {eq}.", f"Find x if {eq}.", f"What is x when {eq}?"])
    move = f"Subtract {b} from both sides" if b > 0 else f"Add {-b} to both sides"
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
                "trial",
                f"Try x = {', '.join(map(str, range(1, x + 1)))}: {a}x {_signed(b)} = "
                f"{', '.join(str(a * t + b) for t in range(1, x + 1))}. At x = {x} it is {c}. {_boxed(x)}",
            ),
        ),
    )


def one_step_equation(rng: random.Random) -> Problem:
    x, a = rng.randint(1, 12), rng.randint(2, 9)
    form = rng.choice(["add", "sub", "mul"])
    if form == "add":
        eq, b = f"x + {a} = {x + a}", x + a
        inverse = f"Subtract {a} from both sides: x = {b} - {a} = {x}."
        think = f"What plus {a} makes {b}? {x} + {a} = {b}, so {x}."
        count = f"Count up from {a} to {b}: {', '.join(map(str, range(a + 1, b + 1)))}. That is {x} steps."
    elif form == "sub":
        eq, b = f"x - {a} = {x - a}", x - a
        inverse = f"Add {a} to both sides: x = {b} + {a} = {x}."
        think = f"x is {a} more than {b}: {b} + {a} = {x}."
        count = f"Count up {a} from {b}: {', '.join(map(str, range(b + 1, x + 1)))}. x = {x}."
    else:
        eq, b = f"{a}x = {a * x}", a * x
        inverse = f"Divide both sides by {a}: x = {b} / {a} = {x}."
        think = f"What times {a} makes {b}? {a}*{x} = {b}, so {x}."
        count = f"Count by {a} to {b}: {', '.join(str(a * t) for t in range(1, x + 1))}. That is {x} numbers."
    q = rng.choice([f"Solve for x: {eq}.", f"Find x if {eq}."])
    return Problem(
        "algebra",
        "one_step_equation",
        q,
        str(x),
        (
            Solution("inverse_operation", f"{inverse} {_boxed(x)}"),
            Solution("think_forward", f"{think} {_boxed(x)}"),
            Solution("count", f"{count} {_boxed(x)}"),
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
    g = rng.randint(2, 12)
    m, n = rng.sample(range(2, 10), 2)
    while math.gcd(m, n) != 1:
        m, n = rng.sample(range(2, 10), 2)
    a, b = sorted((g * m, g * n), reverse=True)
    steps, x, y = [], a, b
    while y:
        steps.append(f"{x} = {x // y}*{y} + {x % y}")
        x, y = y, x % y
    fa, fb = _factor(a), _factor(b)
    common = {p: min(e, fb[p]) for p, e in fa.items() if p in fb}
    q = rng.choice(
        [
            f"Find the greatest common divisor of {a} and {b}.",
            f"What is the GCD of {a} and {b}?",
            f"What is the largest number that divides both {a} and {b}?",
            f"Compute gcd({a}, {b}).",
        ]
    )
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
    m, n = rng.randint(3, 9), rng.randint(10, 50)
    r, qt = n % m, n // m
    big = (n // (10 * m)) * 10 * m  # a round multiple of m to split off first
    rest = n - big
    q = rng.choice(
        [
            f"What is the remainder when {n} is divided by {m}?",
            f"Find the remainder of {n} divided by {m}.",
            f"What is left over when {n} is divided by {m}?",
        ]
    )
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
            Solution(
                "count_by",
                f"Count by {m} up to {n}: {', '.join(str(m * t) for t in range(1, qt + 1))}. "
                f"{n} - {m * qt} = {r}. {_boxed(r)}",
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
    ("stamps", "an album"),
    ("games", "a box"),
    ("apps", "a phone"),
    ("films", "a list"),
]


def choose(rng: random.Random) -> Problem:
    n, k = rng.randint(4, 10), rng.choice([2, 3])
    items, group = rng.choice(_GROUPS)
    value = math.comb(n, k)
    falling = "*".join(str(n - i) for i in range(k))
    prod = math.perm(n, k)
    q = rng.choice(
        [
            f"In how many ways can {k} {items} be chosen from {group} of {n}?",
            f"How many ways are there to pick {k} of the {n} {items} in {group}?",
        ]
    )
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


_PAIRS = [
    ("shirts", "pairs of trousers", "outfits"),
    ("drinks", "snacks", "drink-and-snack combos"),
    ("starters", "main courses", "two-course meals"),
    ("roads from A to B", "roads from B to C", "routes from A to C through B"),
    ("pens", "notebooks", "pen-and-notebook sets"),
    ("hats", "scarves", "hat-and-scarf pairs"),
]


def product_rule(rng: random.Random) -> Problem:
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    first, second, what = rng.choice(_PAIRS)
    value = a * b
    q = f"There are {a} {first} and {b} {second}. How many {what} are possible?"
    running = ", ".join(str(b * i) for i in range(1, a + 1))
    return Problem(
        "counting",
        "product_rule",
        q,
        str(value),
        (
            Solution("multiply", f"{a} choices, then {b} choices: {a}*{b} = {value}. {_boxed(value)}"),
            Solution(
                "count_up", f"Each of the {a} goes with {b}: counting by {b}: {running}. {_boxed(value)}"
            ),
        ),
    )


def multiples(rng: random.Random) -> Problem:
    k = rng.randint(3, 9)
    n = rng.randint(10, min(60, 12 * k))
    value, r = n // k, n % k
    q = rng.choice(
        [
            f"How many multiples of {k} are there from 1 to {n}?",
            f"How many of the numbers 1 to {n} are divisible by {k}?",
        ]
    )
    return Problem(
        "counting",
        "multiples",
        q,
        str(value),
        (
            Solution("divide", f"{n} = {value}*{k} + {r}, so there are {value} multiples. {_boxed(value)}"),
            Solution(
                "last_multiple",
                f"The largest multiple of {k} up to {n} is {k * value} = {k}*{value}. "
                f"The multiples are {k}*1 to {k}*{value}. {_boxed(value)}",
            ),
            Solution(
                "list",
                f"Multiples of {k} up to {n}: {', '.join(str(k * t) for t in range(1, value + 1))}. "
                f"That is {value}. {_boxed(value)}",
            ),
        ),
    )


# ---------------------------------------------------------------- statistics
def mean(rng: random.Random) -> Problem:
    k = rng.choice([2, 3])
    target = rng.randint(3, 15)
    xs = [0]
    while min(xs) < 1:  # positive values only
        xs = [target + rng.randint(-3, 3) for _ in range(k - 1)]
        xs.append(target * k - sum(xs))
    rng.shuffle(xs)
    total = sum(xs)
    base = xs[0]
    devs = [x - base for x in xs]
    listed = ", ".join(map(str, xs))
    q = rng.choice([f"What is the mean of {listed}?", f"Find the average of {listed}."])
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
    k = rng.choice([3, 5])
    xs = rng.sample(range(1, 30), k)
    s = sorted(xs)
    med = s[k // 2]
    listed = ", ".join(map(str, xs))
    q = rng.choice([f"What is the median of {listed}?", f"Find the median of {listed}."])
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


def mode(rng: random.Random) -> Problem:
    k = rng.choice([4, 5])
    common = rng.randint(1, 20)
    others = rng.sample([i for i in range(1, 21) if i != common], k - 2)
    xs = [common, common, *others]
    rng.shuffle(xs)
    listed = ", ".join(map(str, xs))
    q = rng.choice([f"What is the mode of {listed}?", f"Which value appears most often in {listed}?"])
    tally = ", ".join(
        f"{v} appears {xs.count(v)} time{'s' if xs.count(v) > 1 else ''}" for v in dict.fromkeys(xs)
    )
    return Problem(
        "statistics",
        "mode",
        q,
        str(common),
        (
            Solution(
                "sort", f"Sorted: {', '.join(map(str, sorted(xs)))}. {common} appears twice. {_boxed(common)}"
            ),
            Solution("tally", f"Tally: {tally}. The mode is {common}. {_boxed(common)}"),
        ),
    )


GENERATORS: dict[str, list[Callable[[random.Random], Problem]]] = {
    "algebra": [linear_equation, one_step_equation],
    "number_theory": [gcd, remainder],
    "counting": [choose, product_rule, multiples],
    "statistics": [mean, median, mode],
}
TINY_DOMAINS = list(GENERATORS)  # the math domains: the default of data.domains
CODE_DOMAIN = "code"  # programming problems with hidden tests (data_pipeline/tiny/code.py)
ALL_TINY_DOMAINS = [*TINY_DOMAINS, CODE_DOMAIN]


def make_problem(domain: str, rng: random.Random) -> Problem:
    """One problem of ``domain``, its type drawn uniformly."""
    if domain == CODE_DOMAIN:
        return rng.choice(CODE_GENERATORS)(rng)
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
