"""The `data` stage: corpora, probing sets, RL prompts, held-out eval set, data card.

    ssp stage data recipes/tiny.yaml

``data.source=tiny`` generates the built-in task (and, when ``model.name_or_path=tiny``, trains
its tokenizer and builds its model). ``data.source=build`` builds the problem pool from public
problem sets (``data_pipeline/build.py``: filters, dedup, decontamination against every eval
benchmark, domain labels, splits; docs/data.md). ``data.source=files`` validates the recipe's own
files and copies them, decontaminated, into the same layout. Splits of the tiny task are disjoint by
exact problem text, generated in the order eval, probe, rl, sft so that the held-out set does
not depend on the size of the others.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ssp.config.recipe import Recipe, config_hash
from ssp.core.context import StageContext, StageResult
from ssp.core.corpus import PROBLEM_FIELDS, SFT_FIELDS, load_rows, user_prompt, write_rows
from ssp.core.errors import DataError
from ssp.core.outputs import DataOutputs
from ssp.core.tables import markdown_table
from ssp.data_pipeline.decontaminate import Decontaminator


def _tiny_splits(recipe: Recipe) -> dict[str, list[dict[str, Any]]]:
    from ssp.data_pipeline.tiny.problems import generate

    cfg = recipe.data
    splits: dict[str, list[dict[str, Any]]] = {"eval": [], "rl": [], "sft": []}
    splits.update({f"probe/{d}": [] for d in cfg.domains})
    plan = [
        ("eval", cfg.eval_problems_per_domain),
        ("probe", cfg.probe_problems_per_domain),
        ("rl", cfg.rl_problems_per_domain),
        ("sft", cfg.train_problems_per_domain),
    ]
    for domain in tqdm(cfg.domains, desc="data: generating tiny task"):
        taken: set[str] = set()
        for s_index, (split, count) in enumerate(plan):
            problems = generate(domain, count, seed=cfg.seed * 1000 + s_index, exclude=taken)
            taken |= {p.problem for p in problems}
            key = f"probe/{domain}" if split == "probe" else split
            for i, p in enumerate(problems):
                row = {
                    "id": f"{split}-{domain}-{i:05d}",
                    "domain": domain,
                    "kind": p.kind,
                    "problem": p.problem,
                    "answer": p.answer,
                }
                if split == "sft":
                    chosen = p.solutions[: cfg.tiny_solutions]
                    row["solutions"] = [s.text for s in chosen]
                    row["strategies"] = [s.strategy for s in chosen]
                splits[key].append(row)
    return splits


def _file_splits(recipe: Recipe) -> dict[str, list[dict[str, Any]]]:
    cfg = recipe.data
    domains = set(cfg.domains)
    splits = {
        "eval": load_rows(cfg.eval_file, PROBLEM_FIELDS, "eval", key="data.eval_file", domains=domains),
        "sft": load_rows(cfg.train_file, SFT_FIELDS, "sft", key="data.train_file", domains=domains),
    }
    if cfg.solutions_per_problem:  # the diversity ablation on one's own corpus: the m most different
        from ssp.data_pipeline.diversity import select

        m = cfg.solutions_per_problem
        for r in splits["sft"]:
            if len(r["solutions"]) > m:
                keep = select(r["solutions"], m, "maxmin")
                r["solutions"] = [r["solutions"][i] for i in keep]
                if r.get("strategies"):
                    r["strategies"] = [r["strategies"][i] for i in keep]
    if cfg.rl_file:
        splits["rl"] = load_rows(cfg.rl_file, PROBLEM_FIELDS, "rl", key="data.rl_file", domains=domains)
    for domain in cfg.domains:
        splits[f"probe/{domain}"] = load_rows(
            cfg.probe_files[domain],
            PROBLEM_FIELDS,
            f"probe/{domain}",
            key=f"data.probe_files.{domain}",
            domains={domain},
        )
    return splits


def check_files(recipe: Recipe) -> None:
    """The row checks of ``data.source=files``, for the preflight (a DataError names file and row)."""
    _file_splits(recipe)


def _decontaminate(splits: dict[str, list[dict[str, Any]]], n: int) -> dict[str, int]:
    """Drop non-eval rows that copy an eval problem (data_pipeline/decontaminate.py, the build's rules);
    returns drops per split."""
    deco = Decontaminator(n)
    for r in splits["eval"]:
        deco.add("eval", r["id"], r["problem"])
    deco.fit(r["problem"] for name, rows in splits.items() if name != "eval" for r in rows)
    dropped = {}
    for name, rows in splits.items():
        if name == "eval":
            continue
        kept = [r for r in rows if not deco.contaminated(r["problem"])]
        dropped[name] = len(rows) - len(kept)
        splits[name] = kept
    return dropped


def _data_card(
    splits: dict[str, list[dict[str, Any]]], dropped: dict[str, int], token_lengths: list[int]
) -> dict:
    per_split = {
        name: dict(sorted(Counter(r["domain"] for r in rows).items())) for name, rows in splits.items()
    }
    sols = [len(r["solutions"]) for r in splits["sft"]]
    strategies = Counter(s for r in splits["sft"] for s in r.get("strategies") or [])
    distinct = [len(set(r["strategies"])) for r in splits["sft"] if r.get("strategies")]
    card = {
        "rows_per_split_and_domain": per_split,
        "sft_examples": sum(sols),
        "solutions_per_problem": {
            "mean": round(statistics.mean(sols), 3),
            "min": min(sols),
            "max": max(sols),
        },
        "distinct_strategies_per_problem_mean": round(statistics.mean(distinct), 3) if distinct else None,
        "strategies": dict(strategies.most_common()),
        "decontamination_dropped": dropped,
    }
    if token_lengths:
        card["sft_example_tokens"] = {
            "mean": round(statistics.mean(token_lengths), 1),
            "max": max(token_lengths),
        }
    return card


def _card_markdown(card: dict) -> str:
    splits = card["rows_per_split_and_domain"]
    domains = sorted({d for counts in splits.values() for d in counts})
    table = markdown_table(
        ["split", *domains, "total"],
        (
            [name, *(counts.get(d, 0) for d in domains), sum(counts.values())]
            for name, counts in splits.items()
        ),
    )
    lines = ["# Data card", "", table]
    s = card["solutions_per_problem"]
    lines += [
        "",
        f"SFT examples (problem x solution): {card['sft_examples']}; solutions per problem: "
        f"mean {s['mean']}, min {s['min']}, max {s['max']}.",
    ]
    if card.get("distinct_strategies_per_problem_mean"):
        lines.append(
            f"Distinct strategies per problem: {card['distinct_strategies_per_problem_mean']}; "
            f"strategies: {card['strategies']}."
        )
    if "sft_example_tokens" in card:
        t = card["sft_example_tokens"]
        lines.append(f"Tokens per SFT example (chat template applied): mean {t['mean']}, max {t['max']}.")
    lines.append(f"Decontamination drops: {card['decontamination_dropped']}.")
    return "\n".join(lines) + "\n"


def _benchmark_problems(recipe: Recipe) -> dict[str, list[tuple[str, str]]]:
    """Every benchmark the recipe evaluates on, with any extra files of data.build.decontaminate_files:
    {name: [(id, problem)]}. The data stage's own held-out split (tiny_heldout without a source) is
    disjoint by construction and not listed. A benchmark that cannot be read stops the stage."""
    from dataclasses import replace

    from ssp.evaluation.benchmarks import load_benchmark

    out: dict[str, list[tuple[str, str]]] = {}
    for i, spec in enumerate(recipe.eval.benchmarks):
        if spec.name == "tiny_heldout" and not spec.source:
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
    out = ctx.stage_dir
    splits = _tiny_splits(recipe) if recipe.data.source == "tiny" else _file_splits(recipe)
    dropped = (
        _decontaminate(splits, recipe.data.decontaminate_ngram) if recipe.data.decontaminate_ngram else {}
    )
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

    card = _data_card(splits, dropped, lengths)
    (out / "data_card.json").write_text(json.dumps(card, indent=2))
    (out / "data_card.md").write_text(_card_markdown(card))
    return StageResult(
        outputs=DataOutputs.from_splits(paths, model, out / "data_card.md"),
        metrics={"rows": {k: len(v) for k, v in splits.items()}, "sft_examples": card["sft_examples"]},
    )
