"""Where training runs: the device settings the SFT and RL trainers both pass to transformers."""

from __future__ import annotations

import os

import torch


def bf16_supported() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def trainer_device_args(bf16: bool | None = None) -> dict[str, bool]:
    """TrainingArguments keys for this machine. ``bf16=None``: on where a CUDA GPU supports it."""
    cuda = torch.cuda.is_available()
    return {
        "bf16": bf16_supported() if bf16 is None else bf16,
        "dataloader_pin_memory": cuda,
        # accelerate treats torchrun workers as one distributed job on CPU only with use_cpu=True
        "use_cpu": not cuda,
    }


def checkpointing_args(enabled: bool) -> dict[str, bool]:
    """The trainer option for activation (gradient) checkpointing, always given: TRL's SFTConfig and
    GRPOConfig default it to True, so a recipe's ``false`` that was left out used to mean True (every
    SFT and RL run recomputed its forward pass: ~20% of the tiny demo's SFT time). transformers 5.2x
    renamed gradient_checkpointing to activation_checkpointing."""
    from transformers import TrainingArguments

    name = (
        "activation_checkpointing"
        if "activation_checkpointing" in TrainingArguments.__dataclass_fields__
        else "gradient_checkpointing"
    )
    return {name: enabled}


def resolve_nproc(value: int | str, key: str) -> int:
    """Processes a training stage starts per node: ``auto`` = every visible GPU (1 without one).

    On a CUDA machine more processes than visible GPUs is a RecipeError naming ``key`` (before
    launch, instead of torch's "invalid device ordinal" inside each worker). Without CUDA any count
    runs (gloo processes on the CPU, as the tests do)."""
    from ssp.core.errors import RecipeError

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if value == "auto":
        return max(1, visible)
    if not isinstance(value, int) or value < 1:
        raise RecipeError(f"{key}: must be a positive integer or 'auto', got {value!r}")
    if visible and value > visible:
        devices = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise RecipeError(
            f"{key}={value}, but this machine has {visible} visible GPU(s)"
            + (f" (CUDA_VISIBLE_DEVICES={devices})" if devices is not None else "")
            + f": set {key} to at most {visible}, or to auto"
        )
    return value
