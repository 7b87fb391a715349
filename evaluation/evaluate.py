"""Benchmark Pass@1, Pass@k and cons@n of several models, one table: what the `eval` stage
(``stages/eval.py``) and ``ssp eval`` (``launch/cli.py``) run.

    ssp stage eval recipes/tiny.yaml                       # base, spectrum and signal of the run
    ssp eval runs/tiny/merge/model runs/tiny/rl/0-math/final --benchmarks tiny_heldout=runs/tiny/data/eval.jsonl
    ssp eval base=Qwen/Qwen2.5-Math-1.5B mine=out/final --benchmarks aime24=data/aime24.parquet math500

All benchmarks are loaded and checked before any sampling. Models are sampled one after the
other through one generator (weights swapped in, not a new engine per model); each (model,
benchmark) pair is written as soon as it is done, so an interrupted evaluation resumes at the
next pair. Outputs in the stage folder (or ``--out``): ``results.json``, ``results.md``,
``pass1.png`` and ``completions/<model>__<benchmark>.parquet`` (every sample: problem id,
sample index, text, tokens, finish reason, extracted answer, score and the reward's status).
Samples the reward could not score (verifier timeout or error, unscorable reference) are
counted in the tables beside Pass@1; a reward failing on too many stops the evaluation
(``reward/outcome.py``). Local model folders are checked (complete, untruncated) before any
sampling.

Reuse (``core/reuse.py``): each pair's ``by_unit/<model>__<benchmark>.json`` records what its
numbers were made from (``unit_made_from``: the model's identity, the benchmark's problems, the
protocol, the seed, the graders, the engine). A later call into the same folder reuses a pair
only when that record equals the one it would make now; otherwise (another model under the same
name, another n, other graders, a file without a record, written by an older ssp) it samples the
pair again and overwrites it and its completions. Display names never collide: two folders both
called ``final`` are shown as ``A/final`` and ``B/final`` (``model_names``).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path, PurePosixPath
from typing import Any

from ssp.core.atomic import write_atomic
from ssp.core.context import StageContext
from ssp.core.errors import RecipeError
from ssp.core.model_folder import (
    check_model_folder,
)
from ssp.core.model_identity import model_identity, unknown_revision
from ssp.core.progress import Progress
from ssp.core.reuse import Stamp, rows_digest
from ssp.core.tables import markdown_table
from ssp.evaluation.benchmarks import load_benchmark
from ssp.evaluation.metrics import summarize, vote_key
from ssp.reward.config import make_reward
from ssp.sampling.generation import GenerationConfig, engine_record
from ssp.sampling.scoring import Engine, sample_and_score, sample_columns, save_completions, zero_truncated

log = logging.getLogger("ssp")


def unit_name(model: str, bench: str) -> str:
    """The file name (no suffix) of a (model, benchmark) pair's unit and completions."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model) + "__" + bench


def model_names(entries: list[tuple[str | None, str]], where: str = "models") -> dict[str, str]:
    """{display name: model folder or hub id}, one entry per model given, in order. ``entries`` are
    (name, path): a given name (``ssp eval NAME=PATH``, a recipe alias) is kept; a model without one
    is shown as the shortest tail of its path that no other model has (``final`` alone, but
    ``A/final`` and ``B/final`` for two sweep arms' final models). The same name given twice, or
    the same path twice without names, is an error: a dict keyed on names would silently keep one
    model of the two (it did: three models given, two evaluated, no word said)."""
    given = [n for n, _ in entries if n]
    twice = sorted(n for n, c in Counter(given).items() if c > 1)
    if twice:
        raise RecipeError(f"{where}: the name {twice[0]!r} is given to two models; names must differ")
    parts = {
        i: [p for p in PurePosixPath(path).parts if p not in (".", "")] or [path]
        for i, (name, path) in enumerate(entries)
        if not name
    }
    depth = dict.fromkeys(parts, 1)

    def tail(i: int) -> str:
        return str(PurePosixPath(*parts[i][-depth[i] :]))

    while True:
        taken = Counter([*given, *(tail(i) for i in parts)])
        clash = [i for i in parts if taken[tail(i)] > 1]
        if not clash:
            break
        longer = [i for i in clash if depth[i] < len(parts[i])]
        if not longer:
            raise RecipeError(
                f"{where}: {', '.join(repr(entries[i][1]) for i in clash)} cannot be told apart by "
                f"name; name them (NAME=PATH)"
            )
        for i in longer:
            depth[i] += 1
    return {name or tail(i): path for i, (name, path) in enumerate(entries)}


def unit_made_from(
    model: dict[str, Any], bench, rows, proto, options: dict, cfg: Any, engine: dict[str, Any]
) -> Stamp:
    """What a (model, benchmark) pair's numbers are made from: the model's identity
    (``model_identity``), the benchmark (name, a hash of its problems as sampled: the data file's
    rows after conversion and ``limit``; its reward, the reward's options, majority voting), the
    protocol (n, temperature, top_p, top_k, max new tokens, prompt suffix, the k of Pass@k), the
    sampling seed, the graders it is also graded with, and the engine (``sampling.generation.engine_record``)."""
    return Stamp.of(
        {
            "model": model,
            "benchmark": {
                "name": bench.name,
                "problems": rows_digest(rows),
                "reward": bench.reward,
                "reward_options": options,
                "votes": bench.votes,
            },
            "protocol": {**asdict(proto), "k": list(proto.k)},
            "seed": cfg.seed,
            "graders": list(cfg.graders) if bench.reward == "math_correctness" else [],
            "engine": engine,
        }
    )


def evaluate(
    models: dict[str, str],
    specs: list[Any],
    cfg: Any,
    out_dir: Path,
    default_sources: dict[str, str] | None = None,
    default_suffixes: dict[str, str] | None = None,
    ctx: StageContext | None = None,
    generation: GenerationConfig | None = None,
) -> dict[str, Any]:
    """Sample and score every model on every benchmark; write and return the results.

    ``specs`` are ``BenchmarkSpec``s and ``cfg`` an ``EvalConfig`` (``config/eval.py``: the recipe's
    eval section, or what ``ssp eval`` builds from its flags); ``ctx``, in a stage, gets the
    metrics logged and the budget checked after each (model, benchmark) pair."""
    default_sources, default_suffixes = default_sources or {}, default_suffixes or {}
    units = Counter(unit_name(m, "") for m in models)
    if max(units.values(), default=0) > 1:  # "a/b" and "a_b" would share files
        same = [m for m in models if units[unit_name(m, "")] > 1]
        raise RecipeError(f"models {same} would share result files; give them other names")
    for path in models.values():  # a broken local model fails now, naming its file
        if Path(path).exists():
            check_model_folder(path)
    loaded = []
    for i, spec in enumerate(specs):
        bench, rows, proto = load_benchmark(spec, f"eval.benchmarks[{i}]", default_sources.get(spec.name, ""))
        if spec.prompt_suffix is None and spec.name in default_suffixes:
            proto = replace(proto, prompt_suffix=default_suffixes[spec.name])
        loaded.append((bench, rows, proto, {**bench.reward_options, **spec.reward_options}))
        log.info("eval: %s: %d problems x %d samples", bench.name, len(rows), proto.n_samples)
    (out_dir / "by_unit").mkdir(parents=True, exist_ok=True)
    (out_dir / "completions").mkdir(exist_ok=True)
    results: dict[str, dict[str, Any]] = {m: {} for m in models}
    models_engine, rewards, graders = Engine(generation, cfg.batch_size), {}, {}
    progress = Progress(len(models) * len(loaded))
    engine = engine_record(generation, cfg.batch_size)
    try:
        for i, (bench, _, _, options) in enumerate(loaded):  # a bad reward option fails before sampling
            key = (bench.reward, json.dumps(options, sort_keys=True))
            if key not in rewards:
                rewards[key] = make_reward(bench.reward, options, f"eval.benchmarks[{i}].reward_options")
        for model, path in models.items():
            identity = model_identity(path)
            for bench, rows, proto, options in loaded:
                unit = unit_name(model, bench.name)
                unit_file = out_dir / "by_unit" / f"{unit}.json"
                completions = out_dir / "completions" / f"{unit}.parquet"
                stamp = unit_made_from(identity, bench, rows, proto, options, cfg, engine)
                done = _reusable(unit_file, stamp, completions if cfg.save_completions else None)
                if done is not None:  # made from exactly this before (an interrupted earlier attempt)
                    results[model][bench.name] = done
                    log.info("eval: %s on %s already done, reusing %s", model, bench.name, unit_file)
                    log.info("eval: model x benchmark pairs %s", progress.step(timed=False))
                    continue
                key = (bench.reward, json.dumps(options, sort_keys=True))
                params = proto.params(seed=cfg.seed)
                flat, scores, seconds, report = sample_and_score(
                    models_engine.on(path),
                    rows,
                    rewards[key],
                    params,
                    f"eval {model} {bench.name}",
                    proto.prompt_suffix,
                )
                n = params.n
                keys = [vote_key(c.text, bench.reward) if bench.votes else None for c in flat]
                problems = [
                    {
                        "domain": r["domain"],
                        "scores": scores[i * n : (i + 1) * n],
                        "statuses": report.statuses[i * n : (i + 1) * n],
                        "keys": keys[i * n : (i + 1) * n],
                        "tokens": [c.num_tokens for c in flat[i * n : (i + 1) * n]],
                        "finish": [c.finish_reason for c in flat[i * n : (i + 1) * n]],
                        "missing": report.missing[i * n : (i + 1) * n],
                    }
                    for i, r in enumerate(rows)
                ]
                metrics = summarize(problems, proto.k, bench.votes)
                tokens = sum(c.num_tokens for c in flat)
                metrics.update(
                    prompts_too_long=[
                        r["id"] for i, r in enumerate(rows) if flat[i * n].finish_reason == "prompt_too_long"
                    ],
                    model=path,
                    seconds=round(seconds, 2),
                    tokens_per_second=tokens / seconds if seconds else None,
                    protocol={**proto.__dict__, "k": list(proto.k)},
                    grader=getattr(rewards[key], "grader", None),
                    context_length=context_length(path, generation),
                )
                if cfg.graders and bench.reward == "math_correctness":
                    metrics["graders"] = grade_with_each(cfg.graders, flat, rows, n, options, graders, scores)
                metrics["max_new_tokens_used"] = min(
                    proto.max_new_tokens, metrics["context_length"] or proto.max_new_tokens
                )
                if cfg.save_completions:
                    save_completions(completions, rows, flat, scores, report, n, answer=keys)
                else:  # never leave another sampling's completions beside these numbers
                    completions.unlink(missing_ok=True)
                if unknown_revision(identity):  # known once the engine has downloaded the model
                    identity = model_identity(path)
                    stamp = unit_made_from(identity, bench, rows, proto, options, cfg, engine)
                write_atomic(unit_file, json.dumps({**stamp.as_dict(), "result": metrics}, indent=2))
                results[model][bench.name] = metrics
                log.info(
                    "eval: %s on %s: pass@1 %.3f, truncated %.1f%%, no score %.1f%% (timeouts %.1f%%, "
                    "errors %.1f%%), %.0f tokens/s",
                    model,
                    bench.name,
                    metrics["pass@1"],
                    100 * metrics["truncated"],
                    100 * (metrics["unscorable_rate"] + metrics["timeout_rate"] + metrics["error_rate"]),
                    100 * metrics["timeout_rate"],
                    100 * metrics["error_rate"],
                    metrics["tokens_per_second"] or 0,
                )
                log.info("eval: model x benchmark pairs %s", progress.step())
                if ctx is not None:
                    ctx.log(
                        {
                            f"eval/{model}/{bench.name}/{k}": v
                            for k, v in metrics.items()
                            if isinstance(v, int | float)
                        }
                    )
                    ctx.check_budget(f"results so far are in {out_dir / 'by_unit'}")
    finally:
        models_engine.close()
        for r in [*rewards.values(), *graders.values()]:
            if hasattr(r, "close"):
                r.close()
    summary = {
        "models": models,
        "benchmarks": {b.name: {"title": b.title, "problems": len(rows)} for b, rows, _, _ in loaded},
        "results": results,
    }
    write_atomic(out_dir / "results.json", json.dumps(summary, indent=2))
    write_atomic(out_dir / "results.md", markdown(summary))
    chart(summary, out_dir / "pass1.png")
    return summary


def _reusable(unit_file: Path, stamp: Stamp, completions: Path | None) -> dict[str, Any] | None:
    """The metrics of a finished pair if ``unit_file`` records being made from ``stamp`` (and its
    completions file is there when one is wanted); None when the pair must be sampled (again)."""
    if not unit_file.is_file():
        return None
    what = f"eval unit {unit_file.stem}"
    if unknown_revision(stamp.made_from["model"]):
        log.info("%s: not reused (its hub model is not in the local cache); made again", what)
        return None
    if not stamp.matches(Stamp.read(unit_file), what=what):
        return None
    if completions is not None and not completions.is_file():
        log.info("%s: not reused (its completions %s are missing); made again", what, completions)
        return None
    result = json.loads(unit_file.read_text()).get("result")
    if not isinstance(result, dict):
        log.info("%s: not reused (it holds no result); made again", what)
        return None
    return result


def grade_with_each(
    names: list[str], flat, rows, n: int, options: dict, cache: dict, scored: list
) -> dict[str, Any]:
    """The same samples graded by each grader (``reward/graders.py``): Pass@1 per grader and, per
    pair, the number of samples one calls correct and the other not. ``scored`` are the samples'
    scores under the benchmark's own reward (``options``), reused for its grader; ``cache`` keeps
    the other rewards, keyed on the grader and every option they were built with."""
    own = options.get("grader", "ssp")
    correct = {}
    for name in names:
        if name == own:
            scores = scored
        else:
            key = (name, json.dumps(options, sort_keys=True))
            if key not in cache:
                cache[key] = make_reward("math_correctness", {**options, "grader": name}, "eval.graders")
            reward = cache[key]
            scores = zero_truncated(reward, flat, reward([c.text for c in flat], **sample_columns(rows, n)))
        correct[name] = [s == 1.0 for s in scores]
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    return {
        "samples": len(flat),
        "pass@1": {g: sum(c) / max(1, len(c)) for g, c in correct.items()},
        "disagreements": {
            f"{a} vs {b}": sum(x != y for x, y in zip(correct[a], correct[b], strict=True)) for a, b in pairs
        },
    }


def context_length(path: str, generation: GenerationConfig | None) -> int | None:
    """The context the model was sampled with: the recipe's ``generation.max_model_len``, else the
    model folder's ``max_position_embeddings``; None when neither is known (a hub name)."""
    if generation is not None and generation.max_model_len:
        return generation.max_model_len
    config = Path(path) / "config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("max_position_embeddings")
    return None


def _fmt(v: Any, pct: bool = True) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}" if pct else f"{v:.0f}"


def markdown(summary: dict[str, Any]) -> str:
    """Pass@1 (%) per model and benchmark, then one detail table per benchmark."""
    benches, results = list(summary["benchmarks"]), summary["results"]
    overview = [
        [model, *(_fmt(per.get(b, {}).get("pass@1")) for b in benches)] for model, per in results.items()
    ]
    parts = ["Pass@1 (%, mean over samples)", markdown_table(["model", *benches], overview)]
    for b in benches:
        first = next(per[b] for per in results.values() if b in per)
        p, n = first["protocol"], first["samples_per_problem"]
        ks = [f"pass@{k}" for k in p["k"] if k > 1]
        cols = [
            "pass@1",
            *ks,
            f"cons@{n}",
            "truncated",
            "no answer",
            "unscorable",
            "timed out",
            "errors",
            "skipped",
            "token limit",
            "mean tokens",
        ]
        rows = [
            [
                model,
                _fmt(m["pass@1"]),
                *(_fmt(m.get(k)) for k in ks),
                _fmt(m.get(f"cons@{n}")),
                _fmt(m["truncated"]),
                *(
                    _fmt(m.get(k))
                    for k in ("no_answer_rate", "unscorable_rate", "timeout_rate", "error_rate")
                ),
                str(m.get("skipped", 0)),
                str(m.get("max_new_tokens_used", p["max_new_tokens"])),
                _fmt(m["mean_tokens"], pct=False),
            ]
            for model, per in results.items()
            if (m := per.get(b)) is not None
        ]
        parts += [
            f"{summary['benchmarks'][b]['title']}: {first['problems']} problems x {n} samples, temperature "
            f"{p['temperature']}, top_p {p['top_p']}, max_new_tokens {p['max_new_tokens']} asked; graded by "
            f"{first.get('grader') or 'its reward'} (%, except: skipped = problems whose prompt did not fit the "
            f"context, never sampled and counted wrong; token limit = the new tokens the model's context "
            f"allowed at most; mean tokens)",
            markdown_table(["model", *cols], rows),
        ]
    graded = [
        (model, b, m["graders"]) for model, per in results.items() for b, m in per.items() if "graders" in m
    ]
    if graded:
        names = list(graded[0][2]["pass@1"])
        pairs = list(graded[0][2]["disagreements"])
        rows = [
            [
                model,
                b,
                str(g["samples"]),
                *(_fmt(g["pass@1"][x]) for x in names),
                *(str(g["disagreements"][p]) for p in pairs),
            ]
            for model, b, g in graded
        ]
        parts += [
            "Pass@1 (%) by grader, and samples each pair of graders disagrees on (reward/graders.py)",
            markdown_table(["model", "benchmark", "samples", *names, *pairs], rows),
        ]
    return "\n\n".join(parts) + "\n"


def chart_figure(summary: dict[str, Any]):
    """Grouped bars: Pass@1 per benchmark, one bar per model; y from 0, legend outside the bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches, models = list(summary["benchmarks"]), list(summary["results"])
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(2.5 + 1.6 * len(benches), 3.2))
    top = 0.0
    for j, model in enumerate(models):
        values = [100 * summary["results"][model].get(b, {}).get("pass@1", 0) for b in benches]
        top = max(top, *values)
        bars = ax.bar(
            [i + (j - (len(models) - 1) / 2) * width for i in range(len(benches))], values, width, label=model
        )
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(benches)), benches)
    ax.set_ylabel("Pass@1 (%)")
    ax.set_ylim(0, max(1.0, top * 1.15))  # room for the labels; never below 0, even when all are 0
    ax.set_title("Benchmark Pass@1 by model")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig


def chart(summary: dict[str, Any], out_png: Path) -> None:
    """pass1.png: chart_figure, written atomically."""
    import matplotlib.pyplot as plt

    fig = chart_figure(summary)
    write_atomic(out_png, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
