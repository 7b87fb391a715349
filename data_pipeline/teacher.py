"""Teacher sampling: N solutions per problem from a teacher model, each verified by a reward, written
in shards so that a killed run redoes no finished shard.

    paths = sample_shards(rows, out / "teacher", open_generator, reward, params, shard_size=256,
                          teacher=model, reward_spec={"name": "math_correctness", "options": {}})
    for row, samples in sampled_rows(paths, rows): ...     # the current rows, with their samples
    counts = verification_counts(paths)

Each shard is a JSON Lines file of the shard's problems, each with its samples:
``{text, num_tokens, finish_reason, score, status, round}`` (``status``: the reward's verdict,
scored / unscorable / timeout / error: ``reward/outcome.py``). Shards are written under a
temporary name and renamed when complete.

Reuse (core/reuse.py). ``plan.json`` records what the shards were made from (``made_from``):

- ``problems``: the hash of every row's whole content, in order (problem text, answer and every
  other column: the prompt is built from the problem and the reward scores with the other columns),
  and their count;
- ``sampling``: the sampling parameters (n, temperature, top_p, top_k, max_new_tokens, seed);
- ``teacher``: ``core/model_identity.py`` of the model: for a local folder the content hash of
  each file that shapes its samples (weights, config, generation config, tokenizer, chat template;
  an adapter's base too), for a hub id the id (``teacher_identity``);
- ``reward``: the reward's registry name and options the samples were scored with;
- ``engine``: the sampling engine's settings that change samples (backend, dtype, context length,
  tensor parallelism, ``shard_prompts``: not ``data_parallel``, which gives the same samples);
- ``prompt_suffix``, ``shard_size``, ``adaptive_max_samples``, and ``seeds``: the seed scheme below.

Shards are kept only under a ``plan.json`` whose record equals the current one; otherwise (another
record, no record: a folder written by an older ssp, no plan.json) they are removed and sampled
again, never mixed in. A folder ``shared`` between runs instead holds one subfolder per record
(``<folder>/<made_from_id>/``) and removes nothing of other records: runs that sample the same
teacher on the same rows with the same settings (a selection ablation, a rebuild with other splits
downstream) reuse the samples instead of paying for them again, and a source corrected since (an
answer, a problem's text) is sampled and verified again. The generator is opened only when a
shard is missing (starting a vLLM engine costs ~30 s on CPU, minutes for a large teacher on GPU).
Consumers read the samples with ``sampled_rows``, which hands out the current rows (never the
shard's copy of them) and refuses a shard whose rows are not the current ones.

Seeds (``shard_seeds``): every call that samples shard k, round r gets a seed of its own such that
the per-sample seeds of two calls never meet. A call of P prompts with n samples each and seed s
uses seeds in [s, s + P + n - 1): vLLM gives child i of a request seeded s the seed s + i
(vllm/v1/engine/parallel_sampling.py), and ``sampling/data_parallel.py`` samples its d-th slice of
the prompts with s + d, d < P. So round 0 of shard k starts at ``seed + stride * k`` (the stride
7919, as before: first-round samples are unchanged), round 1 right after round 0's range, and the
stride grows in steps of 7919 only when a shard's two ranges together need more than 7919 seeds.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ssp.core.atomic import write_atomic
from ssp.core.corpus import JsonlWriter, iter_jsonl
from ssp.core.errors import DataError
from ssp.core.model_identity import model_identity
from ssp.core.progress import Progress
from ssp.core.reuse import Stamp, digest, rows_digest
from ssp.sampling.generation import SamplingParams
from ssp.sampling.scoring import sample_and_score

log = logging.getLogger("ssp")
SHARD_SEED_STRIDE = 7919
"""Round 0 of shard k samples with seed + 7919 k (a multiple of 7919 when a shard needs more seeds)."""
SEED_SCHEME = "disjoint-call-ranges"
"""Recorded in plan.json: shards sampled under another seed scheme are sampled again."""


def call_span(prompts: int, n: int) -> int:
    """How many consecutive seeds, from the call's own, a call of ``prompts`` prompts with ``n``
    samples each can use: ``n`` per request (vLLM: child i gets seed + i) plus one per slice of the
    prompts (sampling/data_parallel.py: slice d gets seed + d, at most one slice per prompt)."""
    return prompts + n - 1


def shard_seeds(seed: int, k: int, shard_size: int, n: int, adaptive_max_samples: int = 0) -> tuple[int, int]:
    """(round 0 seed, round 1 seed) of shard ``k``: the ranges [s, s + call_span) of every round of
    every shard are disjoint (module docstring). Round 0 is ``seed + 7919 k`` unless a shard's
    rounds need more than 7919 seeds."""
    first = call_span(shard_size, n)
    second = call_span(shard_size, adaptive_max_samples - n) if adaptive_max_samples > n else 0
    stride = SHARD_SEED_STRIDE * max(1, -(-(first + second) // SHARD_SEED_STRIDE))
    start = seed + stride * k
    return start, start + first


def teacher_identity(teacher: str) -> dict[str, Any]:
    """``core.model_identity`` of the teacher, less a hub id's cached revision: it is unknown
    until the engine first downloads the model, so a record holding it would change after the first
    build and send every shard back to the teacher. A hub teacher is its id; for a pinned revision,
    point ``data.teacher.model`` at a local copy (then its files' content is the identity)."""

    def without_revision(identity: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in identity.items() if k != "revision" or "hub" not in identity}
        if "base" in out:  # a LoRA adapter on a hub base
            out["base"] = without_revision(out["base"])
        return out

    return without_revision(model_identity(teacher))


def plan_stamp(
    rows: list[dict[str, Any]],
    params: SamplingParams,
    teacher: str,
    shard_size: int,
    adaptive_max_samples: int = 0,
    suffix: str = "",
    reward_spec: Mapping[str, Any] | None = None,
    engine: Mapping[str, Any] | None = None,
) -> Stamp:
    """The made-from record of ``sample_shards``' shards (module docstring)."""
    return Stamp.of(
        {
            "problems": rows_digest(rows),
            "count": len(rows),
            "sampling": asdict(params),
            "teacher": teacher_identity(teacher),
            "reward": dict(reward_spec or {}),
            "engine": dict(engine or {}),
            "prompt_suffix": suffix,
            "shard_size": shard_size,
            "adaptive_max_samples": adaptive_max_samples,
            "seeds": SEED_SCHEME,
        }
    )


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
    reward_spec: Mapping[str, Any] | None = None,
    engine: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Sample and score every row ``params.n`` times, shard by shard; returns the shard files.
    ``adaptive_max_samples`` > n: a row with no correct finished sample gets a second round that
    brings it to that many samples, its samples marked ``round: 1``; seeds as ``shard_seeds``.
    ``teacher``: the model (folder or hub id) ``open_generator`` opens; ``reward_spec``: the
    reward's name and options, ``engine``: the engine's settings (both go into the made-from
    record; None: the reward's ``__name__``, no engine settings). ``shared``: the shards go to
    ``folder/<made_from_id>/`` and samples of other records are left where they are."""
    stamp = plan_stamp(
        rows,
        params,
        teacher,
        shard_size,
        adaptive_max_samples,
        suffix,
        reward_spec
        if reward_spec is not None
        else {"name": getattr(reward, "__name__", type(reward).__name__)},
        engine,
    )
    if shared:
        folder = folder / stamp.id
    folder.mkdir(parents=True, exist_ok=True)
    plan_file = folder / "plan.json"
    fresh = not plan_file.exists()  # nothing to reuse, nothing to say about it
    if fresh or not stamp.matches(Stamp.read(plan_file), what=f"teacher samples in {folder}"):
        old = sorted(folder.glob("shard-*.jsonl"))
        for path in old:
            path.unlink()
        if old:
            log.info("teacher: removed %d shards of %s sampled for another plan", len(old), folder)
        write_atomic(
            plan_file,
            json.dumps({"teacher": teacher, "params": asdict(params), **stamp.as_dict()}, indent=1),
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
            # each shard its own seeds: one seed for all would give every shard the same random stream
            seed0, seed1 = shard_seeds(params.seed, k, shard_size, params.n, adaptive_max_samples)
            samples = _round(generator, shard, reward, replace(params, seed=seed0), desc, suffix, 0)
            if adaptive_max_samples > params.n:  # a second round where the first had no correct sample
                unsolved = [i for i, ss in enumerate(samples) if not any(map(correct, ss))]
                if unsolved:
                    more = replace(params, n=adaptive_max_samples - params.n, seed=seed1)
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


def sampled_rows(
    paths: list[Path], rows: list[dict[str, Any]]
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(row, its samples) for every row of ``rows``, the shards' samples in order. The row handed
    out is the current one, never the shard's copy; a shard row that is not the current row (other
    id or content: a shard edited or copied in by hand) is a DataError naming shard and line."""
    current = iter(rows)
    for path in paths:
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                stored = json.loads(line)
                samples = stored.pop("samples")
                row = next(current, None)
                if row is None or digest(stored) != digest(row):
                    raise DataError(
                        f"{path}: line {n}: samples of problem {stored.get('id')!r} as it was when "
                        f"sampled, not of the current "
                        + (f"problem {row.get('id')!r}" if row is not None else "rows (more rows than them)")
                        + f"; remove {path.parent} to sample again"
                    )
                yield row, samples
    extra = next(current, None)
    if extra is not None:
        raise DataError(
            f"{paths[-1].parent if paths else 'teacher'}: no samples of problem {extra.get('id')!r}"
        )


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
