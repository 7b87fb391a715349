"""Is a run folder's result the result of its recipe? What ``ssp compare`` asks before it names an arm.

A run folder holds the recipe of its latest ``ssp run`` (``recipe.yaml``) and a manifest of what
each stage did. A run finished with ``rl.lam=0``, then re-run with ``rl.lam=1`` and killed in RL,
holds the lam=1 recipe beside the lam=0 eval: reporting it as the lam=1 arm names one arm's result
after another. So each stage's fingerprint is recomputed from the recipe and the manifest, as the
runner would before skipping it (``launch/runner.py: fingerprint``), and every stage of the recipe
must be completed with that fingerprint; a shared stage's donor must still hold it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ssp.config.recipe import load_recipe
from ssp.core.errors import SSPError
from ssp.core.manifest import Manifest
from ssp.launch.runner import donor_still_holds, fingerprint
from ssp.launch.stages import STAGES


def stale_stages(run_dir: Path) -> list[str]:
    """What keeps ``run_dir``'s results from being its recipe's: one line per stage, [] if none."""
    run_dir = Path(run_dir)
    try:
        recipe = load_recipe(run_dir / "recipe.yaml")
    except SSPError as err:
        return [f"its recipe.yaml does not load ({err})"]
    # Paths in a recipe and a manifest are relative to where the run was started: look from there.
    home = next(
        (
            a
            for a in [run_dir.resolve(), *run_dir.resolve().parents]
            if (a / recipe.run_dir).resolve() == run_dir.resolve()
        ),
        None,
    )
    with contextlib.chdir(home) if home is not None else contextlib.nullcontext():
        return _stale(recipe, Manifest(run_dir.resolve()), run_dir.resolve())


def _stale(recipe, manifest: Manifest, run_dir: Path) -> list[str]:
    problems: list[str] = []
    for name in recipe.stages:
        entry = manifest.stage(name)
        if not entry or entry.get("status") != "completed":
            status = (entry or {}).get("status", "not run")
            problems.append(f"stage {name} is {status} under its current recipe.yaml")
            break  # the stages after it were made from an older one, or not at all
        spec = STAGES[name]
        if any(not manifest.completed(n) for n in spec.upstream(recipe)):
            problems.append(f"stage {name}: an upstream stage has not completed")
            break
        if entry.get("fingerprint") != fingerprint(spec, recipe, manifest).fingerprint:
            problems.append(
                f"stage {name} was made from another recipe or other upstream outputs than its "
                f"recipe.yaml describes (fingerprint {entry.get('fingerprint')} is not the recipe's)"
            )
            break
        if entry.get("shared_from") and not donor_still_holds(name, entry, run_dir):
            problems.append(f"stage {name} is shared from {entry['shared_from']}, which no longer holds it")
            break
    return problems
