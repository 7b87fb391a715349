"""Disjoint splits per domain from one labelled problem pool: held-out eval, probing set, RL prompts,
SFT problems.

Each problem gets a seeded uniform number (``labels.unit_hash``); within a domain the problems
with the smallest numbers go to eval, then probe, then rl, and the rest to sft (at most
``sft`` per domain when set). Two passes over the pool and one bounded heap per domain: the pool is
never held in memory. Disjointness is by problem (one row, one split); duplicates were removed
before, so no problem text is in two splits either.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

from ssp.data_pipeline.labels import unit_hash

ORDER = ("eval", "probe", "rl")


def assign(rows: Iterable[dict[str, Any]], sizes: dict[str, int], sft_cap: int, seed: int) -> dict[str, str]:
    """{uid: split} for the rows taken by eval/probe/rl (``sizes`` per domain) and, with
    ``sft_cap`` > 0, the rows sft keeps; a uid not in the result is an sft row (``sft_cap`` 0) or
    left out (over the cap: the caller counts it)."""
    wanted = sum(sizes.get(s, 0) for s in ORDER) + sft_cap
    heaps: dict[str, list[tuple[float, str]]] = {}
    for row in rows:
        h = unit_hash(seed, row["uid"])
        heap = heaps.setdefault(row["domain"], [])
        if sft_cap == 0 and wanted == 0:
            continue
        if len(heap) < wanted:
            heapq.heappush(heap, (-h, row["uid"]))
        elif -heap[0][0] > h:
            heapq.heapreplace(heap, (-h, row["uid"]))
    taken: dict[str, str] = {}
    for heap in heaps.values():
        ordered = [uid for _, uid in sorted(heap, key=lambda t: -t[0])]
        start = 0
        for split in ORDER:
            for uid in ordered[start : start + sizes.get(split, 0)]:
                taken[uid] = split
            start += sizes.get(split, 0)
        if sft_cap:
            for uid in ordered[start:]:
                taken[uid] = "sft"
    return taken
