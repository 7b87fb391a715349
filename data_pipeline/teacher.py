"""Teacher sampling: N solutions per problem from a teacher model, each verified by a reward, written
in shards so that a killed run redoes no finished shard.

    paths = sample_shards(rows, out / "teacher", open_generator, reward, params, shard_size=256)
    counts = verification_counts(paths)

Each shard is a JSON Lines file of the shard's problems, each with its samples:
``{text, num_tokens, finish_reason, score, status}`` (``status``: the reward's verdict, scored /
unscorable / timeout / error: ``reward/outcome.py``). Shards are written under a temporary name
and renamed when complete; ``plan.json`` records what the shards were sampled for (problem ids,
sampling parameters, teacher), and shards of another plan are removed, never mixed in. The
generator is opened only when a shard is missing (starting a vLLM engine costs ~30 s on CPU,
minutes for a large teacher on GPU).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.atomic import write_atomic
from core.corpus import JsonlWriter, iter_jsonl
from core.progress import Progress
from sampling.generation import SamplingParams
from sampling.scoring import sample_and_score

log = logging.getLogger("ssp")


def _plan_id(rows: list[dict[str, Any]], params: SamplingParams, teacher: str, shard_size: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([asdict(params), teacher, shard_size], sort_keys=True).encode())
    for r in rows:
        h.update(r["id"].encode() + b"\0")
    return h.hexdigest()[:16]


def sample_shards(
    rows: list[dict[str, Any]],
    folder: Path,
    open_generator: Callable[[], Any],
    reward,
    params: SamplingParams,
    shard_size: int,
    teacher: str,
    suffix: str = "",
) -> list[Path]:
    """Sample and score every row ``params.n`` times, shard by shard; returns the shard files."""
    folder.mkdir(parents=True, exist_ok=True)
    plan = _plan_id(rows, params, teacher, shard_size)
    plan_file = folder / "plan.json"
    if plan_file.is_file() and json.loads(plan_file.read_text()).get("plan") != plan:
        for old in folder.glob("shard-*.jsonl"):
            old.unlink()
        log.info("teacher: %s holds shards of another plan; removed", folder)
    write_atomic(
        plan_file, json.dumps({"plan": plan, "teacher": teacher, "params": asdict(params)}, indent=1)
    )

    shards = [rows[i : i + shard_size] for i in range(0, len(rows), shard_size)]
    paths = [folder / f"shard-{k:05d}.jsonl" for k in range(len(shards))]
    progress = Progress(len(shards))
    generator = None
    try:
        for k, (shard, path) in enumerate(zip(shards, paths, strict=True)):
            if path.is_file():
                log.info(
                    "teacher: shard %d/%d sampled earlier, kept (%s)",
                    k + 1,
                    len(shards),
                    progress.step(False),
                )
                continue
            if generator is None:
                generator = open_generator()
            flat, scores, _, report = sample_and_score(
                generator, shard, reward, params, desc=f"teacher shard {k + 1}/{len(shards)}", suffix=suffix
            )
            n = params.n
            with JsonlWriter(path) as out:
                for i, row in enumerate(shard):
                    samples = [
                        {
                            "text": c.text,
                            "num_tokens": c.num_tokens,
                            "finish_reason": c.finish_reason,
                            "score": scores[j],
                            "status": report.statuses[j],
                        }
                        for j, c in enumerate(flat[i * n : (i + 1) * n], start=i * n)
                    ]
                    out.write({**row, "samples": samples})
            log.info("teacher: shard %d/%d written (%s)", k + 1, len(shards), progress.step())
    finally:
        if generator is not None:
            generator.close()
    return paths


def verification_counts(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """Per domain: problems, samples, correct, truncated (stopped at max_new_tokens), samples the
    reward could not score by status, problems with at least one correct finished sample, and the
    pass rate (correct / samples). Counted from the shard files."""
    per: dict[str, Counter] = {}
    for path in paths:
        for row in iter_jsonl(path):
            c = per.setdefault(row["domain"], Counter())
            c["problems"] += 1
            ok = 0
            for s in row["samples"]:
                c["samples"] += 1
                c["truncated"] += s["finish_reason"] == "length"
                if s["status"] != "scored":
                    c[f"not_scored_{s['status']}"] += 1
                correct = s["score"] == 1.0 and s["finish_reason"] == "stop"
                c["correct"] += correct
                ok += correct
            c["solved"] += ok > 0
    return {
        d: {**dict(c), "pass_rate": round(c["correct"] / c["samples"], 4) if c["samples"] else None}
        for d, c in sorted(per.items())
    }
