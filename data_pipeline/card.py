"""The data card: markdown for people, JSON for programs.

Two kinds, one split table: the card of a built corpus (sources, filters, decontamination, labels,
teacher, RL window, splits; numbers from ``build.recount``, counted from the files the build wrote;
a PNG of problem lengths), and the card of the tiny task or a recipe's own files (``splits_card``:
rows per split and domain, solutions and strategies per SFT problem, decontamination drops)."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from ssp.core.tables import markdown_table
from ssp.data_pipeline.decontaminate import MATCH_RULES


def unit_histogram(values: list[float], bins: int) -> tuple[list[float], list[int]]:
    """(edges, counts) of ``bins`` equal bins over [0, 1], each [a, b) and the last closed (1.0 counts
    in it); rounded first, so 0.3 lands in [0.3, 0.4) despite 0.3 * 10 = 2.9999999999999996."""
    counts = [0] * bins
    for v in values:
        counts[min(int(round(v * bins, 9)), bins - 1)] += 1
    return [i / bins for i in range(bins + 1)], counts


def splits_table(splits: dict[str, dict[str, int]]) -> str:
    """Rows per split (one line each) and domain (one column each), with the total."""
    domains = sorted({d for counts in splits.values() for d in counts})
    return markdown_table(
        ["split", *domains, "total"],
        ([name, *(c.get(d, 0) for d in domains), sum(c.values())] for name, c in splits.items()),
    )


def splits_card(
    splits: dict[str, list[dict[str, Any]]], dropped: dict[str, int], token_lengths: list[int]
) -> dict[str, Any]:
    """The card of splits made without the build (the tiny task, a recipe's own files)."""
    per_split = {
        name: dict(sorted(Counter(r["domain"] for r in rows).items())) for name, rows in splits.items()
    }
    sols = [len(r["solutions"]) for r in splits["sft"]]
    strategies = Counter(s for r in splits["sft"] for s in r.get("strategies") or [])
    distinct = [len(set(r["strategies"])) for r in splits["sft"] if r.get("strategies")]
    card: dict[str, Any] = {
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


def splits_card_markdown(card: dict[str, Any]) -> str:
    lines = ["# Data card", "", splits_table(card["rows_per_split_and_domain"])]
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


def _fmt(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "0"


def card_markdown(card: dict[str, Any]) -> str:
    lines = ["# Data card (built corpus)", "", "## Sources", ""]
    lines.append(
        markdown_table(
            ["source", "licence", "read", "filtered", "duplicates", "contaminated", "unlabelled", "labelled"],
            (
                [
                    name,
                    s["licence"] or "(not given)",
                    s["read"],
                    _fmt(s["filtered"]),
                    _fmt(s["duplicates"]),
                    s["contaminated"],
                    _fmt(s["unlabelled"]),
                    _fmt(s["labelled"]),
                ]
                for name, s in card["sources"].items()
            ),
        )
    )
    for name, s in card["sources"].items():
        if t := s.get("solutions"):
            lines += [
                "",
                f"{name}'s own solutions (rows that passed the filters): {t['read']} read, {t['kept']} kept, "
                f"{t['unverified']} marked wrong by the source, {t['unfinished']} unfinished; "
                f"{t['problems_without_one']} problems with none left (the teacher's, if one is configured).",
            ]
    lines += [
        "",
        f"Filter rules, in the order tried: {', '.join(card['filters'])}. "
        f"Near duplicates: MinHash Jaccard >= {card['near_duplicate_threshold']} (0 = exact only).",
    ]
    deco = card["decontamination"]
    lines += ["", "## Decontamination", ""]
    lines.append(
        f"Rules (data_pipeline/decontaminate.py): verbatim and numbers-changed copies, embedded ones from "
        f"{deco['rules']['ngram']} words (0 = off); rewordings at idf-weighted cosine >= "
        f"{deco['rules']['similarity']} with the benchmark's numbers kept (0 = off). Every match, with both "
        f"texts, its rule and score: `{deco['matches_file']}`."
    )
    lines += [
        "",
        markdown_table(
            ["benchmark", "problems", "verbatim", "numbers changed", "reworded"],
            ([b, v["problems"], *(v.get(r, 0) for r in MATCH_RULES)] for b, v in deco["benchmarks"].items()),
        )
        if deco["benchmarks"]
        else "No benchmark to decontaminate against (the recipe evaluates on none but its own held-out split).",
    ]
    labels = card["labels"]
    lines += ["", "## Domain labels", ""]
    lines.append(
        f"Origin of the kept rows' labels: {_fmt(labels['origin'])}. Dropped: {_fmt(labels['dropped'])}. "
        f"Over data.train_problems_per_domain: {labels['over_sft_cap']}."
    )
    clf = labels.get("classifier") or {}
    if "accuracy" in clf:
        at = clf["accuracy_at_threshold"]
        chosen = clf.get("threshold_chosen_for")
        how = (
            f" (chosen: the smallest reaching {chosen['overall']:.0%} overall and {chosen['per_domain']:.0%} "
            f"per domain{'' if clf.get('targets_met') else '; NOT reached, 0.99 used'})"
            if chosen
            else ""
        )
        lines.append(
            f"Classifier (TF-IDF + logistic regression) on {clf['held_out_rows']} held-out labelled rows "
            f"(trained on {clf['train_rows']}): forced-choice accuracy {clf['accuracy']:.1%}; at confidence >= "
            f"{clf['threshold']}{how}: labels right {at:.1%} of the time, covering "
            f"{clf['coverage_at_threshold']:.1%} of in-domain rows; outside rows labelled anyway: "
            f"{clf.get('outside_let_in_at_threshold', 0)}."
            if at is not None and clf.get("coverage_at_threshold") is not None
            else f"Classifier on {clf['held_out_rows']} held-out rows: no row reaches confidence {clf['threshold']}."
        )
        lines += [
            "",
            markdown_table(
                ["domain", "held-out rows", "found (forced choice)", "labels given", "labels right"],
                (
                    [
                        d,
                        v["rows"],
                        f"{v['accuracy']:.1%}",
                        v.get("labelled_at_threshold", ""),
                        ""
                        if v.get("precision_at_threshold") is None
                        else f"{v['precision_at_threshold']:.1%}",
                    ]
                    for d, v in clf["per_domain"].items()
                ),
            ),
        ]
    else:
        lines.append("Classifier: not trained (fewer than 2 domains among the source-labelled rows).")
    if "teacher" in card:
        lines += ["", *_teacher_lines(card["teacher"])]
    if "rl_pass_rate" in card:
        lines += ["", *_window_lines(card["rl_pass_rate"])]
    splits = card["splits"]
    lines += ["", "## Splits", "", splits_table(splits)]
    lines.append(
        "\n`sft_problems` are SFT problems without a solution: the teacher's input (docs/data.md)."
        if "sft_problems" in splits
        else ""
    )
    lines += [
        "",
        "Problem length (characters) per domain: "
        + "; ".join(f"{d} mean {v['mean']}, max {v['max']}" for d, v in card["problem_chars"].items())
        + ". Histogram: `data_card.png`.",
    ]
    return "\n".join(lines) + "\n"


def _teacher_lines(t: dict[str, Any]) -> list[str]:
    s = t["sampling"]
    lines = [
        "## Teacher solutions",
        "",
        f"Teacher `{t['model']}`: {s['n']} samples per SFT problem (temperature {s['temperature']}, "
        f"top_p {s['top_p']}, at most {s['max_new_tokens']} tokens), verified by the reward; a truncated "
        "sample is never kept.",
        "",
        markdown_table(
            ["domain", "problems", "samples", "correct", "pass rate", "truncated", "not scored", "solved"],
            (
                [
                    d,
                    v["problems"],
                    v["samples"],
                    v.get("correct", 0),
                    v["pass_rate"],
                    v.get("truncated", 0),
                    sum(n for k, n in v.items() if k.startswith("not_scored_")),
                    v.get("solved", 0),
                ]
                for d, v in t["verification"].items()
            ),
        ),
        "",
        f"Selection `{t['selection']}`: solutions kept per problem {t['solutions_per_problem']}; "
        f"unsolved problems dropped: {t['unsolved']}.",
    ]
    div = t["divergence"]
    if div["problems_with_a_choice"]:
        lines.append(
            f"Mean pairwise divergence of the kept sets (1 - word-trigram Jaccard), over the "
            f"{div['problems_with_a_choice']} problems with more correct solutions than kept: "
            f"{div['kept_mean']} against {div['random_m_mean']} for random-m on the same pools."
        )
    return lines


def _window_lines(r: dict[str, Any]) -> list[str]:
    lo, hi = r["window"]
    edges = r["histogram_edges"]
    bins = [f"{a:.1f}-{b:.1f}" for a, b in zip(edges, edges[1:], strict=False)]
    lines = [
        "## RL prompts by pass rate",
        "",
        f"`{r['model']}`, {r['samples_per_prompt']} samples per prompt; kept {r['kept']} of {r['prompts']} "
        f"prompts with {lo} < pass rate < {hi}.",
        "",
        markdown_table(
            ["pass rate", *bins], [["all prompts", *r["histogram_all"]], ["kept", *r["histogram_kept"]]]
        ),
    ]
    w = r.get("mgpo_weight")
    if w:
        wb = [
            f"{a:.1f}-{b:.1f}" for a, b in zip(w["histogram_edges"], w["histogram_edges"][1:], strict=False)
        ]
        lines += [
            "",
            f"Expected MGPO weights of the kept prompts (lambda {w['lambda']}, p0 {w['p0']}): mean {w['mean']}, "
            f"min {w['min']}, max {w['max']}.",
            "",
            markdown_table(["weight", *wb], [["prompts", *w["histogram"]]]),
        ]
    return lines


def length_plot(lengths: dict[str, list[int]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    top = max((max(v) for v in lengths.values() if v), default=1)
    bins = [top * i / 30 for i in range(31)]
    for domain, values in sorted(lengths.items()):
        ax.hist(values, bins=bins, histtype="step", label=f"{domain} ({len(values)})")
    ax.set_xlabel("problem length (characters)")
    ax.set_ylabel("problems")
    ax.set_title("Problem lengths per domain, all splits")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
