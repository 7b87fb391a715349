"""The tiny task's splits: eval, probe (one per domain), rl and sft, disjoint by exact problem text.

Generated per domain in the order eval, probe, rl, sft, each excluding what came before, so that
the held-out set does not depend on the size of the others (a smaller SFT set leaves eval alone).
SFT rows carry the first ``solutions`` of each problem's solutions, with their strategy names. A
code problem's row has its hidden tests (a JSON string, LiveCodeBench's layout) and ``fn_name``
instead of an answer.
"""

from __future__ import annotations

import json
from typing import Any

from tqdm.auto import tqdm

from ssp.data_pipeline.tiny.problems import generate

ORDER = ("eval", "probe", "rl", "sft")


def tiny_splits(
    domains: list[str], sizes: dict[str, int], seed: int, solutions: int
) -> dict[str, list[dict[str, Any]]]:
    """{split: rows}; ``sizes``: problems per domain of each split in ``ORDER``."""
    splits: dict[str, list[dict[str, Any]]] = {"eval": [], "rl": [], "sft": []}
    splits.update({f"probe/{d}": [] for d in domains})
    for domain in tqdm(domains, desc="data: generating tiny task"):
        taken: set[str] = set()
        for s_index, split in enumerate(ORDER):
            problems = generate(domain, sizes[split], seed=seed * 1000 + s_index, exclude=taken)
            taken |= {p.problem for p in problems}
            key = f"probe/{domain}" if split == "probe" else split
            for i, p in enumerate(problems):
                row = {
                    "id": f"{split}-{domain}-{i:05d}",
                    "domain": domain,
                    "kind": p.kind,
                    "problem": p.problem,
                }
                if p.tests:  # a code problem: its hidden tests instead of an answer (core/corpus.py)
                    row |= {"tests": json.dumps(list(p.tests)), "fn_name": p.fn_name or None}
                else:
                    row["answer"] = p.answer
                if split == "sft":
                    chosen = p.solutions[:solutions]
                    row["solutions"] = [s.text for s in chosen]
                    row["strategies"] = [s.strategy for s in chosen]
                splits[key].append(row)
    return splits
