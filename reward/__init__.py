"""Verifier rewards with TRL's reward-function signature, behind a name registry.

from ssp.reward import get_reward
correctness = get_reward("math_correctness")      # also: "code_tests", "format"
correctness(completions, answer=golds)            # -> list[float | None]
"""

from ssp.reward.registry import get_reward, known_rewards

__all__ = ["get_reward", "known_rewards"]
