"""Sampling a model on problems and scoring every sample: the measurement probing, the held-out
comparisons, the RL pass-rate filter and evaluation share.

    flat, scores, seconds, report = sample_and_score(generator, rows, reward, params, desc="eval")
    with ModelSampler(generation, params, reward_spec, ks=[1, 4, 8]) as sampler:
        result = sampler.score("runs/tiny/sft/checkpoints/checkpoint-300", rows, desc="probe")

Each row is one problem (``id, domain, problem`` plus the reward's columns); its ``params.n``
samples are scored by the reward with the row's other columns. Samples the reward could not score
(unscorable gold, verifier timeout or error: ``reward/outcome.py``) count as incorrect in Pass@k
and are counted by cause in the result; a reward failing on too many raises. A sample cut at the
token limit scores 0 under a reward that does not grade unfinished work (``zero_truncated``). ``save_completions``
keeps every sample with its score and status as Parquet.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ssp.core.atomic import write_atomic
from ssp.core.corpus import chat_prompt
from ssp.reward.config import RewardSpec, make_reward
from ssp.reward.outcome import ERROR, TIMEOUT, UNSCORABLE, CallReport, call_report
from ssp.sampling.data_parallel import make_generator
from ssp.sampling.generation import GenerationConfig, SamplingParams
from ssp.sampling.pass_at_k import per_domain

log = logging.getLogger("ssp")


def sample_and_score(generator, rows, reward, params: SamplingParams, desc: str, suffix: str = ""):
    """(completions, scores, generation seconds, CallReport): ``params.n`` samples per row, flattened
    row-major, each scored by ``reward`` with the row's other columns; the report says which samples
    were scored, unscorable, timed out or errored."""
    start = time.monotonic()
    outs = generator.generate([chat_prompt(r["problem"], suffix) for r in rows], params, desc=desc)
    seconds = time.monotonic() - start
    flat = [c for o in outs for c in o]
    too_long = [
        r["id"] for r, o in zip(rows, outs, strict=True) if o and o[0].finish_reason == "prompt_too_long"
    ]
    if too_long:
        log.warning(
            "%s: %d prompts longer than the context, scored 0: problem ids %s",
            desc,
            len(too_long),
            too_long[:50],
        )
    scores = reward([c.text for c in flat], **sample_columns(rows, params.n))
    return flat, zero_truncated(reward, flat, scores), seconds, call_report(reward, scores)


def sample_columns(rows, n: int) -> dict[str, list]:
    """The reward's dataset columns for ``n`` samples per row, flattened row-major (every column of
    any row but the problem text; None where a row lacks it: a math row beside code rows has no
    ``tests``). The first row's columns alone once left code rows without their tests."""
    names = [k for k in dict.fromkeys(k for r in rows for k in r) if k != "problem"]
    return {k: [r.get(k) for r in rows for _ in range(n)] for k in names}


def zero_truncated(reward, flat, scores: list) -> list:
    """Scores with every completion cut at the token limit (finish reason ``length``) set to 0.0,
    under a reward that does not grade unfinished work (``grades_truncated = False``: the
    ``ssp`` and ``deepscaler`` math graders); a reward without the attribute grades them as they
    are. Items the reward could not score stay None (counted by cause)."""
    rule = getattr(reward, "grades_truncated", True)
    if rule is True:
        return scores
    graded = reward.truncation_graded if rule is None else [False] * len(flat)  # None: per item (by_domain)
    return [
        0.0 if s is not None and c.finish_reason == "length" and not g else s
        for c, s, g in zip(flat, scores, graded, strict=True)
    ]


def failure_counts(report: CallReport) -> dict[str, int]:
    """{"unscorable", "timeouts", "errors"}: samples of a call that have no score, by cause."""
    c = report.counts
    return {"unscorable": c[UNSCORABLE], "timeouts": c[TIMEOUT], "errors": c[ERROR]}


def save_completions(path: Path, rows, flat, scores, report: CallReport, n: int, **extra) -> None:
    """Every sample of a scoring pass as Parquet: problem id, sample index, text, tokens, finish
    reason, score and the reward's status for it (plus ``extra`` columns, one value per sample)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "problem_id": [r["id"] for r in rows for _ in range(n)],
            "sample": [j for _ in rows for j in range(n)],
            "text": [c.text for c in flat],
            "num_tokens": [c.num_tokens for c in flat],
            "finish_reason": [c.finish_reason for c in flat],
            **extra,
            "score": scores,
            "status": report.statuses,
        }
    )
    write_atomic(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def score_model(
    generator,
    rows: list[dict[str, Any]],
    reward,
    params: SamplingParams,
    ks: list[int],
    desc: str,
    suffix: str = "",
    completions_file: Path | None = None,
) -> dict[str, Any]:
    """Sample ``rows`` once, score, and aggregate Pass@k per domain (and "all"); with
    ``completions_file``, keep every sample there."""
    flat, scores, seconds, report = sample_and_score(generator, rows, reward, params, desc, suffix)
    per_problem = []
    for i, r in enumerate(rows):
        s = scores[i * params.n : (i + 1) * params.n]
        per_problem.append((r["domain"], params.n, sum(1 for x in s if x == 1.0)))
    if completions_file is not None:
        save_completions(completions_file, rows, flat, scores, report, params.n)
    tokens = sum(c.num_tokens for c in flat)
    return {
        "pass": per_domain(per_problem, sorted({1, *ks})),
        "correct_per_problem": [c for _, _, c in per_problem],  # in row order, out of params.n
        "samples": len(flat),
        **failure_counts(report),
        "truncated": sum(c.finish_reason == "length" for c in flat) / len(flat),
        "mean_tokens": tokens / len(flat),
        "tokens_per_second": tokens / seconds if seconds else None,
    }


class Engine:
    """One generator for several models in turn: made for the first, the weights of each next one
    swapped in (not a new engine per model; the same model twice in a row loads nothing), closed
    once. ``ModelSampler`` and ``evaluation/evaluate.py`` sample through it.

        engine = Engine(GenerationConfig(), batch_size=64)
        generator = engine.on("runs/x/sft/checkpoint-300")
        ...
        engine.close()
    """

    def __init__(self, generation: GenerationConfig | None, batch_size: int = 256):
        self.generation, self.batch_size = generation, batch_size
        self.generator = None

    def on(self, model_dir: str | Path):
        if self.generator is None:
            self.generator = make_generator(str(model_dir), self.generation, batch_size=self.batch_size)
        elif self.generator.model_dir != str(model_dir):
            self.generator.load(model_dir)
        return self.generator

    def close(self) -> None:
        if self.generator is not None:
            self.generator.close()
            self.generator = None


class ModelSampler:
    """Scores several models on the same rows with one generator (weights swapped in, not a new
    engine per model) and one correctness reward; closes both on exit.

        with ModelSampler(GenerationConfig(), params, RewardSpec("math_correctness"), ks=[1, 8]) as s:
            result = s.score(model_dir, rows, desc="probe checkpoint-300")
            table = s.compare({"merged": merged_dir, "last SFT": last_dir}, rows, desc="held-out")
    """

    def __init__(
        self,
        generation: GenerationConfig | None,
        params: SamplingParams,
        reward: RewardSpec,
        ks: list[int],
        batch_size: int = 256,
        suffix: str = "",
        where: str = "reward",
    ):
        self.generation, self.params, self.ks = generation, params, list(ks)
        self.batch_size, self.suffix = batch_size, suffix
        self.reward = make_reward(reward.name, reward.options, where)  # ``where``: its recipe key
        self.engine = Engine(generation, batch_size)

    def score(
        self, model_dir: str, rows: list[dict[str, Any]], desc: str, completions_file: Path | None = None
    ) -> dict[str, Any]:
        return score_model(
            self.engine.on(model_dir),
            rows,
            self.reward,
            self.params,
            self.ks,
            desc=desc,
            suffix=self.suffix,
            completions_file=completions_file,
        )

    def compare(self, models: dict[str, str], rows: list[dict[str, Any]], desc: str) -> dict[str, dict]:
        """{name: score(...)} of several models on the same rows: a held-out comparison (the merged
        model against the last SFT checkpoint, the model before against after RL)."""
        return {name: self.score(path, rows, desc=f"{desc} {name}") for name, path in models.items()}

    def __enter__(self) -> ModelSampler:
        return self

    def __exit__(self, *exc) -> None:
        self.engine.close()
        if hasattr(self.reward, "close"):
            self.reward.close()
