"""The `data` stage: corpora, probing sets, RL prompts, held-out eval set, data card.

    ssp stage data recipes/tiny.yaml

``data.source=tiny`` generates the built-in task (and, when ``model.name_or_path=tiny``, trains
its tokenizer and builds its model). ``data.source=build`` builds the problem pool from public
problem sets (``data_pipeline/build.py``: filters, dedup, decontamination against every eval
benchmark, domain labels, splits; docs/data.md). ``data.source=files`` validates the recipe's own
files (``stages/data_files.py``) and copies them, decontaminated against the held-out split by the
build's rules (``data_pipeline/decontaminate.without_copies``), into the same layout. The tiny
task's splits are made by the tiny task (``data_pipeline/tiny/splits.py``); both cards are
written by ``data_pipeline/card.py``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ssp.config.recipe import Recipe, config_hash
from ssp.core.checks import Checks
from ssp.core.context import StageContext, StageResult
from ssp.core.corpus import SFT_FIELDS, load_rows, user_prompt, write_rows
from ssp.core.errors import DataError
from ssp.core.manifest import Manifest
from ssp.core.outputs import DataOutputs
from ssp.stages.data_files import check_files, file_splits
from ssp.stages.spec import (
    StageSpec,
    benchmark_files,
    check_benchmarks,
    check_code_rewards,
    engine_gpus,
    sampling_section,
)


def _benchmark_problems(recipe: Recipe) -> dict[str, list[tuple[str, str]]]:
    """Every benchmark the recipe evaluates on, with any extra files of data.build.decontaminate_files:
    {name: [(id, problem)]}. The data stage's own held-out split (tiny_heldout, tiny_code without a source) is
    disjoint by construction and not listed. A benchmark that cannot be read stops the stage."""
    from dataclasses import replace

    from ssp.evaluation.benchmarks import HELDOUT_SPLIT_BENCHMARKS, load_benchmark

    out: dict[str, list[tuple[str, str]]] = {}
    for i, spec in enumerate(recipe.eval.benchmarks):
        if spec.name in HELDOUT_SPLIT_BENCHMARKS and not spec.source:
            continue
        _, rows, _ = load_benchmark(replace(spec, limit=0), where=f"eval.benchmarks[{i}]")
        out[spec.name] = [(r["id"], r["problem"]) for r in rows]
    for name, path in recipe.data.build.decontaminate_files.items():
        rows = load_rows(path, ("problem",), name, key=f"data.build.decontaminate_files.{name}")
        out[name] = [(str(r.get("id", i)), r["problem"]) for i, r in enumerate(rows, start=1)]
    return out


def build_plan(recipe: Recipe, benchmarks: dict[str, list[tuple[str, str]]]):
    """The build's ``Plan`` from the recipe (and the benchmark problems it decontaminates against)."""
    from ssp.data_pipeline.build import Plan

    cfg = recipe.data
    return Plan(
        sources=cfg.sources,
        options=cfg.build,
        domains=cfg.domains,
        sizes={
            "eval": cfg.eval_problems_per_domain,
            "probe": cfg.probe_problems_per_domain,
            "rl": cfg.rl_problems_per_domain,
        },
        sft_cap=cfg.train_problems_per_domain,
        seed=cfg.seed,
        benchmarks=benchmarks,
        teacher=cfg.teacher,
        rl_pass_rate=cfg.rl_pass_rate,
        generation=recipe.generation,
        prompt_suffix=cfg.prompt_suffix,
    )


def _run_build(recipe: Recipe, ctx: StageContext) -> StageResult:
    from ssp.data_pipeline.build import build_pool
    from ssp.data_pipeline.card import card_markdown, length_plot

    cfg, out = recipe.data, ctx.stage_dir
    benchmarks = _benchmark_problems(recipe)
    plan = build_plan(recipe, benchmarks)
    fingerprint = config_hash(
        cfg,
        {k: [p for _, p in v] for k, v in benchmarks.items()},
        recipe.generation if cfg.sampled_models() else None,
    )
    built = build_pool(plan, out, fingerprint)
    card, paths = built.card, built.splits
    if built.kept_pass_rates is not None:
        card["rl_pass_rate"]["mgpo_weight"] = _expected_mgpo_weights(built.kept_pass_rates, recipe)
    _check_built(recipe, paths)
    length_plot(built.lengths, out / "data_card.png")
    (out / "data_card.json").write_text(json.dumps(card, indent=2))
    (out / "data_card.md").write_text(card_markdown(card))

    if recipe.model.name_or_path == "tiny":
        sft = load_rows(paths["sft"], SFT_FIELDS, "sft")
        model = str(_build_tiny_model(recipe, {"sft": sft}, out)[0])
    else:
        model = recipe.model.name_or_path
    rows = {name: sum(c.values()) for name, c in card["splits"].items()}
    outputs = DataOutputs.from_splits(paths, model, out / "data_card.md")
    return StageResult(outputs=outputs, metrics={"rows": rows, "seconds": card["seconds"]})


def _expected_mgpo_weights(rates: list[float], recipe: Recipe) -> dict[str, Any]:
    """The MGPO weights the kept RL prompts would get at their measured pass rates (lambda and p_0
    of the recipe's rl section): what the entropy weighting will do to this prompt set."""
    if not rates:
        return {}
    import torch

    from ssp.data_pipeline.card import unit_histogram
    from ssp.train.mgpo import max_entropy_weight

    w = max_entropy_weight(torch.tensor(rates, dtype=torch.float64), recipe.rl.lam, recipe.rl.p0).tolist()
    edges, counts = unit_histogram(w, 5)
    return {
        "lambda": recipe.rl.lam,
        "p0": recipe.rl.p0,
        "mean": round(statistics.mean(w), 4),
        "min": round(min(w), 4),
        "max": round(max(w), 4),
        "histogram_edges": edges,
        "histogram": counts,
    }


def _check_built(recipe: Recipe, paths: dict[str, Path]) -> None:
    """Splits a later stage of the recipe reads must have rows; say which and why not."""
    stages = set(recipe.stages)
    needed = []
    if stages & {"sft", "probe"} or recipe.model.name_or_path == "tiny":
        needed.append(
            (
                "sft",
                "no problem the teacher solved (build/dropped/teacher.jsonl)"
                if recipe.data.teacher.model
                else "no problem left has a solution: map a source's solution column "
                "(fields.solution), or set data.teacher.model (docs/data.md)",
            )
        )
    if "probe" in stages and recipe.probe.enabled:
        needed += [
            (f"probe/{d}", "data.probe_problems_per_domain is 0 or the domain has no problems")
            for d in (recipe.probe.domains or recipe.data.domains)
        ]
    for stage, on in (("merge", recipe.merge.eval_heldout), ("rl", recipe.rl.eval_heldout)):
        if stage in stages and on:
            needed.append(("eval", f"{stage}.eval_heldout is true and data.eval_problems_per_domain is 0"))
    if "rl" in stages and any(p.prompts == "rl" for p in recipe.rl.phases):
        needed.append(("rl", "data.rl_problems_per_domain is 0 or no problem was left for it"))
    missing = [f"{name} ({why})" for name, why in needed if name not in paths]
    if missing:
        raise DataError(f"data: the built corpus has no rows for: {'; '.join(missing)}")


def _build_tiny_model(recipe: Recipe, splits: dict, out: Path) -> tuple[Path, list[int]]:
    from ssp.data_pipeline.tiny.model import build_tiny_model, save_tiny_model
    from ssp.data_pipeline.tiny.tokenizer import train_tokenizer

    suffix = recipe.data.prompt_suffix
    texts = [user_prompt(r["problem"], suffix) for r in splits["sft"]]
    texts += [s for r in splits["sft"] for s in r["solutions"]]
    tokenizer = train_tokenizer(texts, recipe.tiny_model.vocab_size)
    model = build_tiny_model(recipe.tiny_model, tokenizer, seed=recipe.data.seed)
    model_dir = out / "base_model"
    save_tiny_model(model, tokenizer, model_dir)
    lengths = [
        len(
            tokenizer.apply_chat_template(
                [
                    {"role": "user", "content": user_prompt(r["problem"], suffix)},
                    {"role": "assistant", "content": s},
                ],
                tokenize=True,
            )["input_ids"]
        )
        for r in splits["sft"]
        for s in r["solutions"]
    ]
    return model_dir, lengths


def run(recipe: Recipe, ctx: StageContext) -> StageResult:
    if recipe.data.source == "build":
        return _run_build(recipe, ctx)
    from ssp.data_pipeline.card import splits_card, splits_card_markdown
    from ssp.data_pipeline.decontaminate import without_copies
    from ssp.data_pipeline.tiny.splits import tiny_splits

    cfg, out = recipe.data, ctx.stage_dir
    if cfg.source == "tiny":
        sizes = {
            "eval": cfg.eval_problems_per_domain,
            "probe": cfg.probe_problems_per_domain,
            "rl": cfg.rl_problems_per_domain,
            "sft": cfg.train_problems_per_domain,
        }
        splits = tiny_splits(cfg.domains, sizes, cfg.seed, cfg.tiny_solutions)
    else:
        splits = file_splits(recipe)
    dropped: dict[str, int] = {}
    if cfg.decontaminate_ngram:
        splits, dropped = without_copies(splits, "eval", cfg.decontaminate_ngram)
    for name, rows in splits.items():
        if not rows:  # decontamination can empty a split: say so instead of training on nothing
            raise DataError(
                f"data: split {name!r} is empty after decontamination ({dropped.get(name)} rows dropped)"
            )

    paths = {
        name: write_rows(rows, out / f"{name}.jsonl")
        for name, rows in tqdm(splits.items(), desc="data: writing splits")
    }

    lengths: list[int] = []
    if recipe.model.name_or_path == "tiny":
        model_dir, lengths = _build_tiny_model(recipe, splits, out)
        model = str(model_dir)
    else:
        model = recipe.model.name_or_path  # the starting model, decided here once

    card = splits_card(splits, dropped, lengths)
    (out / "data_card.json").write_text(json.dumps(card, indent=2))
    (out / "data_card.md").write_text(splits_card_markdown(card))
    return StageResult(
        outputs=DataOutputs.from_splits(paths, model, out / "data_card.md"),
        metrics={"rows": {k: len(v) for k, v in splits.items()}, "sft_examples": card["sft_examples"]},
    )


# ------------------------------------------------------------------ what the launcher knows of it


def preflight(recipe: Recipe, checks: Checks) -> None:
    data = recipe.data
    if data.source == "files":
        checks.file(data.train_file, "data.train_file")
        checks.file(data.eval_file, "data.eval_file")
        checks.file(data.rl_file, "data.rl_file")
        for domain, path in data.probe_files.items():
            checks.file(path, f"data.probe_files.{domain}")
        if not checks.problems:  # the rows themselves, once every file is there
            try:
                check_files(recipe)
            except DataError as err:
                checks.problem(str(err))
    if data.source == "build":
        for i, src in enumerate(data.sources):
            checks.dataset(src.path, f"data.sources[{i}].path")
        for name, path in data.build.decontaminate_files.items():
            checks.file(path, f"data.build.decontaminate_files.{name}")
        if (
            checks.runs("sft")
            and not data.teacher.model
            and not any(src.fields.get("solution") for src in data.sources)
        ):
            checks.problem(
                "data.sources: the sft stage needs solutions, but no source maps a solution column "
                "(fields.solution) and data.teacher.model is empty: map one, or set a teacher (docs/data.md)"
            )
        for key, model in data.sampled_models().items():
            checks.model(model, key)
            sampler = data.teacher if key.startswith("data.teacher") else data.rl_pass_rate
            check_code_rewards(
                f"{key.rsplit('.', 1)[0]}.reward", sampler.reward, sampler.reward_options, checks
            )
        check_benchmarks(recipe, checks)  # a build decontaminates against every benchmark


def report(recipe: Recipe, manifest: Manifest) -> list[str]:
    card = Path(manifest.outputs("data").data_card).read_text()
    return [card.replace("# Data card", "## Data card"), ""]


def _external_files(r: Recipe) -> list[str]:
    if r.data.source == "build":  # local sources, and the benchmarks decontaminated against
        local = [s.path for s in r.data.sources] + list(r.data.sampled_models().values())
        local = [p for p in local if Path(p).exists()]
        return local + list(r.data.build.decontaminate_files.values()) + benchmark_files(r)
    if r.data.source != "files":
        return []
    return [
        p for p in (r.data.train_file, r.data.rl_file, r.data.eval_file, *r.data.probe_files.values()) if p
    ]


SPEC = StageSpec(
    "data",
    run,
    needs=(),
    distributed=False,
    # it hands on the starting model; a built corpus is decontaminated against eval's benchmarks
    sections=lambda r: (
        (r.data, r.tiny_model, r.model.name_or_path)
        + ((r.eval.benchmarks,) if r.data.source == "build" else ())
        + ((sampling_section(r),) if r.data.sampled_models() else ())
    ),
    external_files=_external_files,
    gpus=lambda r: engine_gpus(r) if r.data.sampled_models() else 1,  # a teacher's engines
    preflight=preflight,
    report=report,
    on_one_node="on the first node (its GPUs sample a teacher, if the recipe has one)",
)
