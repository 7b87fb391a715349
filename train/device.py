"""Where training runs: the device settings the SFT and RL trainers both pass to transformers."""

from __future__ import annotations

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
