"""The GPU tier (``make test-gpu``): the pipeline and the speed paths on CUDA, with figures printed.

Every test here is marked ``gpu`` and skipped where torch sees no CUDA device, so ``make test`` on a
CPU machine collects and skips them in a second. On a GPU machine: ``make test-gpu`` (pytest -s, so
the figures are shown); docs/benchmarks.md ("The GPU tier") says what each test prints and how long
the tier takes. Nothing here downloads: models are built locally (the tiny task's, or random weights
of Qwen2.5-Math-1.5B's shape), as in the CPU tier.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # a broken CUDA install reads as "no GPU", the skip says why
        return False


# Each test module of the tier: ``pytestmark = GPU``.
GPU = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not cuda(), reason="no CUDA device: the GPU tier runs on a GPU machine (make test-gpu)"
    ),
]


def has_vllm() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def ssp(*args: str, timeout: float = 900) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``ssp ARGS`` through this interpreter; (the process, its wall seconds). Output is kept
    (a failure shows its tail)."""
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "ssp.launch.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"},
    )
    return out, time.monotonic() - start


def figure(name: str, value) -> None:
    """One printed figure of the tier (``make test-gpu`` runs pytest -s): ``GPU-TIER name: value``."""
    print(f"\nGPU-TIER {name}: {value}", flush=True)


def gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)
