"""A quick greedy held-out accuracy, run at the end of SFT (and on the starting model).

Not the evaluation harness (sampling, Pass@k, the report's protocol): one greedy completion
per problem through the generation interface (``sampling/generation.py``), scored by the same
``math_correctness`` reward as probing and evaluation (so a verifier that fails stops the stage
here too, rather than reading as 0% accuracy); code rows (``tests``) by ``code_tests`` through
``by_domain``, never by an answer they do not have.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from ssp.core.corpus import chat_prompt, is_code_row
from ssp.reward import get_reward
from ssp.reward.sandbox import isolation
from ssp.sampling.generation import SamplingParams, make_backend

log = logging.getLogger("ssp")


def greedy_accuracy(
    model_dir: str | Path,
    rows: list[dict[str, Any]],
    *,
    suffix: str = "",
    batch_size: int = 64,
    max_new_tokens: int = 96,
    desc: str = "greedy eval",
) -> dict[str, Any]:
    generator = make_backend(model_dir, batch_size=batch_size)  # transformers: runs inside the SFT workers
    try:
        outs = generator.generate(
            [chat_prompt(r["problem"], suffix) for r in rows],
            SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens),
            desc=desc,
        )
    finally:
        generator.close()
    code = sorted({r["domain"] for r in rows if is_code_row(r)})
    unchecked = []
    if code and not isolation()["bubblewrap"]:  # a quick check does not opt out of the sandbox
        unchecked = code
        log.warning("%s: no bubblewrap here: the code rows of %s are not checked", desc, code)
        keep = [i for i, r in enumerate(rows) if r["domain"] not in code]
        rows, outs, code = [rows[i] for i in keep], [outs[i] for i in keep], []
    columns = {"answer": [r.get("answer") for r in rows], "domain": [r["domain"] for r in rows]}
    if code:  # code rows by their tests in the sandbox (by_domain), the others by their answer
        reward = get_reward(
            "by_domain", domains=dict.fromkeys(code, "code_tests"), default="math_correctness"
        )
        columns |= {"tests": [r.get("tests") for r in rows], "fn_name": [r.get("fn_name") for r in rows]}
    else:
        reward = get_reward("math_correctness")
    try:
        scores = reward([c.text for (c,) in outs], **columns)
    finally:
        reward.close()
    correct: dict[str, list[int]] = defaultdict(list)
    samples = []
    for r, (completion,), score in zip(rows, outs, scores, strict=True):
        ok = score == 1.0
        correct[r["domain"]].append(int(ok))
        if len(samples) < 8:
            samples.append(
                {
                    "problem": r["problem"],
                    "answer": r.get("answer"),
                    "completion": completion.text,
                    "correct": ok,
                }
            )
    total = [c for cs in correct.values() for c in cs]
    return {
        **({"unchecked": unchecked} if unchecked else {}),
        "accuracy": sum(total) / len(total) if total else None,
        "n": len(total),
        "per_domain": {d: sum(cs) / len(cs) for d, cs in sorted(correct.items())},
        "samples": samples,
    }
