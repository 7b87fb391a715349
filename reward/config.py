"""How a recipe names rewards: a list of ``RewardSpec`` (name, weight, options).

    rewards:
      - {name: math_correctness, weight: 1.0, correctness: true}
      - {name: format, weight: 0.1}

``build_rewards`` turns the list into TRL's ``reward_funcs`` and ``reward_weights``. Exactly
one reward may be marked ``correctness: true``: MGPO estimates each group's accuracy from it
alone, never from format bonuses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ssp.core.errors import RecipeError, check
from ssp.reward.registry import get_reward, known_rewards


@dataclass
class RewardSpec:
    """One reward function of a recipe."""

    name: str = "math_correctness"
    """Registry name: math_correctness, code_tests, by_domain (one per row domain), format or multiple_choice."""
    weight: float = 1.0
    """Weight in the summed reward (TRL's reward_weights)."""
    correctness: bool = False
    """The binary correctness signal MGPO's accuracy estimate p_c is computed from."""
    options: dict[str, Any] = field(default_factory=dict)
    """Keyword options of the reward, e.g. {timeout: 10.0} or {partial: true}."""

    def __post_init__(self):
        check(
            self,
            "name",
            self.name in known_rewards(),
            f"unknown reward {self.name!r}; known rewards: {', '.join(known_rewards())}",
        )
        check(self, "weight", self.weight >= 0, f"must be >= 0, got {self.weight}")


def make_reward(name: str, options: dict[str, Any], where: str) -> Callable:
    """``get_reward(name, **options)``, with a bad option or value reported as a RecipeError naming
    ``where``, the recipe key that set them (``eval.benchmarks[0].reward_options``)."""
    try:
        return get_reward(name, **options)
    except (KeyError, TypeError, ValueError) as err:
        raise RecipeError(f"{where}: {err.args[0] if err.args else err}") from None


def build_rewards(
    specs: list[RewardSpec], where: str = "rewards"
) -> tuple[list[Callable], list[float], int | None]:
    """(reward functions, weights, index of the correctness reward or None).

    ``where`` is the recipe key of the list, used in error messages (``rl.phases[0].rewards``)."""
    if not specs:
        raise RecipeError(f"{where}: needs at least one reward")
    marked = [i for i, s in enumerate(specs) if s.correctness]
    if len(marked) > 1:
        raise RecipeError(f"{where}: only one reward may set correctness: true (entries {marked})")
    funcs = [make_reward(spec.name, spec.options, f"{where}[{i}]") for i, spec in enumerate(specs)]
    return funcs, [s.weight for s in specs], (marked[0] if marked else None)
