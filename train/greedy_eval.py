"""A quick greedy held-out accuracy, run at the end of SFT (and on the starting model).

Not the evaluation harness (sampling, Pass@k, the report's protocol): one greedy completion
per problem with transformers ``generate``, batched with left padding and the KV cache.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from data_pipeline.corpus import chat_prompt
from reward.math_answer import is_correct


@torch.no_grad()
def greedy_accuracy(
    model_dir: str | Path,
    rows: list[dict[str, Any]],
    *,
    suffix: str = "",
    batch_size: int = 64,
    max_new_tokens: int = 96,
    desc: str = "greedy eval",
) -> dict[str, Any]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = (
        AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=torch.bfloat16 if device == "cuda" else torch.float32
        )
        .to(device)
        .eval()
    )
    correct: dict[str, list[int]] = defaultdict(list)
    samples = []
    for start in tqdm(range(0, len(rows), batch_size), desc=desc):
        batch = rows[start : start + batch_size]
        prompts = [
            tokenizer.apply_chat_template(
                chat_prompt(r["problem"], suffix), tokenize=False, add_generation_prompt=True
            )
            for r in batch
        ]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        out = model.generate(
            **enc, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id
        )
        texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        for r, text in zip(batch, texts, strict=True):
            ok = is_correct(r["answer"], text)
            correct[r["domain"]].append(int(ok))
            if len(samples) < 8:
                samples.append(
                    {"problem": r["problem"], "answer": r["answer"], "completion": text, "correct": ok}
                )
    total = [c for cs in correct.values() for c in cs]
    return {
        "accuracy": sum(total) / len(total),
        "n": len(total),
        "per_domain": {d: sum(cs) / len(cs) for d, cs in sorted(correct.items())},
        "samples": samples,
    }
