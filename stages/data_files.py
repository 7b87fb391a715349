"""``data.source=files``: the researcher's own files, read and checked row by row.

Every row is checked by ``core/corpus.load_rows`` (a DataError names the recipe key, the file, the
1-based line and the field); preflight reads them all before anything runs (``check_files``), so a
bad row stops the run in seconds, not when its stage starts. With ``data.solutions_per_problem``
each SFT problem keeps its m most different solutions (the diversity ablation on one's own corpus).
"""

from __future__ import annotations

from typing import Any

from ssp.config.recipe import Recipe
from ssp.core.corpus import PROBLEM_FIELDS, SFT_FIELDS, load_rows


def file_splits(recipe: Recipe) -> dict[str, list[dict[str, Any]]]:
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
    file_splits(recipe)
