"""bf16 SFT of a Qwen2.5-Math-1.5B-shaped model (random weights, built here) through the stage's own
trainer at 4K and 16K tokens, with the recipe's speed keys and LoRA: benchmarks/sft_throughput.py's
table (tokens/s, padding, MFU, peak memory, ratio to a plain loop), printed."""

from __future__ import annotations

import pytest

from .conftest import GPU, figure, gpu_name

pytestmark = GPU


@pytest.mark.parametrize(
    "lengths,settings,extra",
    [
        ("4000", "recipe,no_deepspeed,padding_free,lora", []),
        (
            "16000",
            "recipe",
            ["--set", "sft.per_device_train_batch_size=1", "--set", "sft.gradient_accumulation_steps=2"],
        ),
    ],
    ids=["4k", "16k"],
)
def test_bf16_sft_of_the_1p5b_shape(lengths, settings, extra):
    import torch

    from benchmarks.sft_throughput import main

    results = main(
        [
            "--shape",
            "qwen2.5-math-1.5b",
            "--lengths",
            lengths,
            "--settings",
            settings,
            "--steps",
            "4",
            "--warmup",
            "1",
            *extra,
        ]
    )
    total = torch.cuda.get_device_properties(0).total_memory / 2**30
    for r in results:
        assert r.tokens_per_second > 0 and r.steps == 3, r
        assert r.mfu is None or 0 < r.mfu < 1, r
        assert 0 < r.peak_memory_gib < total, r
        mfu = "n/a" if r.mfu is None else f"{r.mfu:.1%}"
        figure(
            f"sft 1.5B shape {lengths} tokens {r.setting} on {gpu_name()}",
            f"{r.tokens_per_second:,.0f} tokens/s, MFU {mfu}, peak {r.peak_memory_gib:.1f} GiB",
        )
