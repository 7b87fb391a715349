"""Teacher sampling: N solutions per problem from a teacher model, each verified by a reward, written
in shards so that a killed run redoes no finished shard.

    paths = sample_shards(rows, out / "teacher", open_generator, reward, params, shard_size=256)
    counts = verification_counts(paths)

Each shard is a JSON Lines file of the shard's problems, each with its samples:
``{text, num_tokens, finish_reason, score, status}`` (``status``: the reward's verdict, scored /
unscorable / timeout / error: ``reward/outcome.py``). Shards are written under a temporary name
and renamed when complete; ``plan.json`` records what the shards were sampled for (problem ids,
sampling parameters, teacher), and shards of another plan are removed, never mixed in. A folder
``shared`` between runs instead holds one subfolder per plan (``<folder>/<plan id>/``) and removes
nothing: runs that sample the same teacher on the same problems with the same settings (a selection
ablation, a rebuild with other splits downstream) reuse the samples instead of paying for them
again. The generator is opened only when a shard is missing (starting a vLLM engine costs ~30 s on CPU,
minutes for a large teacher on GPU).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from core.atomic import write_atomic
from core.corpus import JsonlWriter, iter_jsonl
from core.progress import Progress
from sampling.generation import SamplingParams
from sampling.scoring import sample_and_score

log = logging.getLogger("ssp")
SHARD_SEED_STRIDE = 7919  # shard k samples with seed + 7919 k (its second round: + 1)


def _plan_id(
    rows: list[dict[str, Any]], params: SamplingParams, teacher: str, shard_size: int, adaptive: int
) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([asdict(params), teacher, shard_size, adaptive], sort_keys=True).encode())
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
    adaptive_max_samples: int = 0,
    shared: bool = False,
) -> list[Path]:
    """Sample and score every row ``params.n`` times, shard by shard; returns the shard files.
    ``adaptive_max_samples`` > n: a row with no correct finished sample gets a second round that
    brings it to that many samples (seed + 1), its samples marked ``round: 1``. ``shared``: the
    shards go to ``folder/<plan id>/`` and samples of other plans are left where they are."""
    plan = _plan_id(rows, params, teacher, shard_size, adaptive_max_samples)
    if shared:
        folder = folder / plan
    folder.mkdir(parents=True, exist_ok=True)
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
            desc = f"teacher shard {k + 1}/{len(shards)}"
            # each shard its own seed: one seed for all would give every shard the same random stream
            shard_params = replace(params, seed=params.seed + SHARD_SEED_STRIDE * k)
            samples = _round(generator, shard, reward, shard_params, desc, suffix, 0)
            if adaptive_max_samples > params.n:  # a second round where the first had no correct sample
                unsolved = [i for i, ss in enumerate(samples) if not any(map(correct, ss))]
                if unsolved:
                    more = replace(
                        shard_params, n=adaptive_max_samples - params.n, seed=shard_params.seed + 1
                    )
                    extra = _round(
                        generator, [shard[i] for i in unsolved], reward, more, f"{desc} (more)", suffix, 1
                    )
                    for i, ss in zip(unsolved, extra, strict=True):
                        samples[i] += ss
            with JsonlWriter(path) as out:
                for row, ss in zip(shard, samples, strict=True):
                    out.write({**row, "samples": ss})
            log.info("teacher: shard %d/%d written (%s)", k + 1, len(shards), progress.step())
    finally:
        if generator is not None:
            generator.close()
    return paths


def correct(sample: dict[str, Any]) -> bool:
    """A sample that counts: scored 1.0 by the reward and finished (not cut at max_new_tokens)."""
    return sample["score"] == 1.0 and sample["finish_reason"] == "stop"


def _round(
    generator, rows, reward, params: SamplingParams, desc: str, suffix: str, round_: int
) -> list[list[dict]]:
    """``params.n`` scored samples per row, as the shard file stores them."""
    flat, scores, _, report = sample_and_score(generator, rows, reward, params, desc=desc, suffix=suffix)
    n = params.n
    return [
        [
            {
                "text": c.text,
                "num_tokens": c.num_tokens,
                "finish_reason": c.finish_reason,
                "score": scores[j],
                "status": report.statuses[j],
                "round": round_,
            }
            for j, c in enumerate(flat[i * n : (i + 1) * n], start=i * n)
        ]
        for i in range(len(rows))
    ]


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
                c["correct"] += correct(s)
                c["second_round"] += s.get("round") == 1
                ok += correct(s)
            c["solved"] += ok > 0
    return {
        d: {**dict(c), "pass_rate": round(c["correct"] / c["samples"], 4) if c["samples"] else None}
        for d, c in sorted(per.items())
    }
