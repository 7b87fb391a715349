"""Reward registry: names -> reward functions with TRL's signature.

    reward = get_reward("math_correctness", timeout=10.0)
    reward(completions, answer=gold_answers)          # -> list[float | None]

Every reward is called as ``reward(completions, **dataset_columns)``; ``completions`` are
strings or chat-message lists (the last message's content is scored). ``None`` means "no
score": the reference cannot be scored (a gold answer that does not parse), or the verifier
timed out or failed on the item; rewards that can fail say which in ``reward.last`` and stop
the caller when too many items fail (``reward/outcome.py``). TRL turns None into NaN.
Rewards are built lazily, so importing ``reward`` starts no worker process.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# name -> "module:factory"; factories take keyword options and return the callable.
_REWARDS: dict[str, str] = {
    "math_correctness": "ssp.reward.math_correctness:MathCorrectness",
    "code_tests": "ssp.reward.code_tests:CodeTests",
    "by_domain": "ssp.reward.by_domain:ByDomain",
    "format": "ssp.reward.format:FormatReward",
    "multiple_choice": "ssp.reward.multiple_choice:MultipleChoice",
}


def known_rewards() -> list[str]:
    return sorted(_REWARDS)


def get_reward(name: str, **options: Any) -> Callable[..., list[float | None]]:
    """The reward function called ``name``, configured with ``options``."""
    if name not in _REWARDS:
        raise KeyError(f"unknown reward {name!r}; known rewards: {', '.join(known_rewards())}")
    module, factory = _REWARDS[name].split(":")
    try:
        return getattr(importlib.import_module(module), factory)(**options)
    except TypeError as err:  # a misspelt option
        raise TypeError(f"reward {name!r}: {err}") from None
    except ValueError as err:  # an option out of range
        raise ValueError(f"reward {name!r}: {err}") from None


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, bytes, or a chat-message list (last message)."""
    if isinstance(completion, list):
        completion = completion[-1].get("content", "") if completion else ""
        if isinstance(completion, list):  # multimodal content parts
            completion = "".join(p.get("text", "") for p in completion if isinstance(p, dict))
    if isinstance(completion, bytes):
        completion = completion.decode("utf-8", errors="replace")
    return completion if isinstance(completion, str) else str(completion)
