"""Sweeps: the arms of an ablation (a grid of recipe keys) over seeds, sharing identical stages.

    ssp sweep recipes/tiny.yaml --grid rl.lam=0,1,4 --seeds 0,1,2
    ssp sweep recipes/tiny.yaml --grid data.solutions_per_problem=1,3 --seeds 0,1,2 --name diversity
    ssp sweep recipes/tiny.yaml --preset entropy --seeds 0,1,2       # the paper's two ablations,
    ssp sweep recipes/tiny.yaml --preset diversity --seeds 0,1,2     # read from the recipe's values

Every combination of the grid's values and every seed is one run, ``runs/<name>/<arm>_seed-<s>``
(``lam-4_seed-1``), run one after another with ``ssp run``'s own code. Before a stage runs, the
runs already in the sweep folder are searched for the same stage with the same fingerprint (the
same config sections and upstream outputs: ``launch/runner.py``, ``adopt``): found, it is shared,
not run again. A lambda sweep therefore generates the data, trains SFT, probes and merges once per
seed and runs only RL and eval per arm. A seed sets ``--seed-keys`` (default ``sft.seed`` and
``rl.seed``: the training randomness; the data and the evaluation sets stay the same, so arms and
seeds are measured on one problem set) to the recipe's value plus the seed.

Re-running the same command finishes what is missing (completed stages are skipped, interrupted
ones resume). ``sweep.json`` in the folder records the recipe, grid, seeds and overrides; a
different sweep pointed at the same folder is refused. At the end ``ssp compare`` writes the
comparison into ``<sweep>/compare/``, arms named by the grid keys, the first arm the baseline.

``--jobs N`` runs N arms at once, each in its own ``ssp run`` process on its own GPUs
(``CUDA_VISIBLE_DEVICES``: the visible GPUs split evenly, or ``sweep.gpus_per_arm`` each), with
its log in ``<sweep>/logs/<arm>.log``. Two arms reaching an identical stage at once do not both
run it: the second waits on the first (``launch/runner.py: share_lock``) and shares its result.

The plan can live in the recipe (``sweep:``, ``config/sweep.py``); then ``ssp sweep RECIPE`` is
the whole command, and flags on the command line replace the recipe's values.

Where the method is silent we chose: arms run one after another unless ``--jobs`` says otherwise
(on a CPU machine, arms at once compete for the same cores), seeds offset the recipe's seeds
rather than replacing them, and a shared stage's cost is counted once, in the run that ran it.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ssp.config.recipe import Recipe, load_recipe
from ssp.core.atomic import write_atomic
from ssp.core.errors import RecipeError
from ssp.core.outputs import EvalOutputs
from ssp.launch.sweep_jobs import gpu_slots, run_concurrently

log = logging.getLogger("ssp")
SEED_KEYS = ("sft.seed", "rl.seed")


@dataclass
class Arm:
    name: str  # run folder name inside the sweep folder
    values: dict[str, Any]  # grid key -> value
    seed: int
    recipe: Recipe


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["rl.lam=0,1,4"]`` -> ``{"rl.lam": [0, 1, 4]}`` (values parsed as YAML: numbers, booleans,
    lists in brackets stay whole: ``data.domains=[algebra],[counting]``)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key or not text.strip():
            raise RecipeError(f"--grid {item!r}: expected KEY=V1,V2,... with at least one value")
        if key in grid:
            raise RecipeError(f"--grid: {key} is given twice")
        grid[key] = _distinct([yaml.safe_load(v) for v in _split_top(text)], f"--grid {item!r}")
    if not grid:
        raise RecipeError("--grid: an empty grid (give at least one KEY=V1,V2,...)")
    return grid


def _distinct(values: list[Any], where: str) -> list[Any]:
    """``values``, refused when one is repeated (two arms would be the same)."""
    if len(set(map(json.dumps, values))) != len(values):
        raise RecipeError(f"{where}: a value is repeated in {values}")
    return values


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    if any(not p.strip() for p in parts):
        raise RecipeError(f"--grid {text!r}: an empty value")
    return [p.strip() for p in parts]


PRESETS = {
    "entropy": "MGPO's entropy weighting: rl.lam 0 (GRPO) against the recipe's lambda",
    "diversity": "the spectrum: 1 solution per SFT problem against the recipe's many",
    "probing": "diversity probing on (specialists fused) against off (the last SFT checkpoint)",
}


def preset_grid(name: str, recipe: Recipe) -> dict[str, list[Any]]:
    """The grid of one of the paper's ablations (``PRESETS``), read from the recipe's own values."""
    if name == "entropy":
        if recipe.rl.lam == 0:
            raise RecipeError(
                "--preset entropy: the recipe's rl.lam is 0 (GRPO already); set the lambda to test"
            )
        return {"rl.lam": [0.0, recipe.rl.lam]}
    if name == "diversity":
        build = recipe.data.source == "build"
        key = "data.teacher.solutions_per_problem" if build else "data.solutions_per_problem"
        many = recipe.data.teacher.solutions_per_problem if build else recipe.data.solutions_per_problem
        if recipe.data.source == "tiny":
            many = recipe.data.tiny_solutions
        if not many or many < 2:
            raise RecipeError(f"--preset diversity: {key} is {many}; set the many-solutions value (e.g. 3)")
        return {key: [1, many]}
    if name == "probing":
        return {"probe.enabled": [True, False]}
    raise RecipeError(
        f"--preset {name!r}: unknown; known: {', '.join(f'{k} ({v})' for k, v in PRESETS.items())}"
    )


def _label(key: str, keys: list[str]) -> str:
    short = key.rsplit(".", 1)[-1]
    return short if sum(k.rsplit(".", 1)[-1] == short for k in keys) == 1 else key.replace(".", "-")


def _text(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in text).strip("-") or "empty"


def expand(
    recipe_path: Path,
    grid: dict[str, list[Any]],
    seeds: list[int],
    overrides: list[str],
    folder: Path,
    seed_keys: tuple[str, ...] = SEED_KEYS,
) -> list[Arm]:
    """Every arm x seed, each recipe loaded and validated (a bad key or value fails here, before
    anything runs, naming the arm)."""
    if not seeds:
        raise RecipeError("--seeds: no seed given")
    base = load_recipe(recipe_path, overrides)
    keys = list(grid)
    arms = []
    for combo in itertools.product(*grid.values()):
        values = dict(zip(keys, combo, strict=True))
        label = "_".join(f"{_label(k, keys)}-{_text(v)}" for k, v in values.items())
        for seed in seeds:
            seeded = [f"{k}={_lookup(base, k) + seed}" for k in seed_keys]
            arm_overrides = [*overrides, *(f"{k}={json.dumps(v)}" for k, v in values.items()), *seeded]
            if not base.tracking.group:  # W&B: every arm's stage runs in one group, the sweep's
                arm_overrides.append(f"tracking.group={folder.name}")
            name = f"{label}_seed-{seed}"
            try:
                recipe = load_recipe(
                    recipe_path, [*arm_overrides, f"output_root={folder}", f"run_name={name}"]
                )
            except RecipeError as err:
                raise RecipeError(f"sweep arm {name}: {err}") from None
            for key, value in values.items():
                got = _value_at(recipe, key)
                if got != value:  # a mapping merges into the recipe's own mapping, it does not replace it
                    raise RecipeError(
                        f"sweep arm {name}: {key} would be {got!r}, not {value!r} (a mapping value merges "
                        f"into the recipe's own mapping): sweep its entries one by one ({key}.NAME=V1,V2)"
                    )
            arms.append(Arm(name, values, seed, recipe))
    return arms


def _value_at(recipe: Recipe, key: str) -> Any:
    """The plain value at ``key`` (dots and list indices) in a loaded recipe."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    got = OmegaConf.select(OmegaConf.structured(recipe), key)
    return OmegaConf.to_container(got) if isinstance(got, DictConfig | ListConfig) else got


def _lookup(recipe: Recipe, key: str) -> int:
    obj: Any = recipe
    for part in key.split("."):
        if not hasattr(obj, part):
            raise RecipeError(f"--seed-keys: the recipe has no key {key}")
        obj = getattr(obj, part)
    if not isinstance(obj, int):
        raise RecipeError(f"--seed-keys: {key} is {obj!r}, not an integer seed")
    return obj


def _check_folder(folder: Path, spec: dict[str, Any]) -> None:
    """The sweep folder is new, or holds this same sweep (then it resumes)."""
    path = folder / "sweep.json"
    if path.is_file():
        before = json.loads(path.read_text())
        if before != spec:
            changed = sorted(k for k in spec if before.get(k) != spec[k])
            raise RecipeError(
                f"{folder} holds another sweep (differs in {changed}); give --name a new name, "
                "or remove the folder"
            )
    elif folder.is_dir() and any(folder.iterdir()):
        raise RecipeError(f"{folder} exists and is not a sweep folder (no sweep.json)")
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(spec, indent=1))


@dataclass
class Plan:
    """What ``ssp sweep`` runs: the recipe's ``sweep:`` section, the command line's flags winning."""

    grid: dict[str, list[Any]]
    seeds: list[int]
    seed_keys: tuple[str, ...]
    name: str
    jobs: int
    gpus_per_arm: int | None


def resolve_plan(
    recipe_path: Path,
    overrides: list[str],
    grid_items: list[str] | None = None,
    presets: list[str] | None = None,
    seeds: list[int] | None = None,
    seed_keys: list[str] | None = None,
    name: str | None = None,
    jobs: int | None = None,
) -> Plan:
    """The sweep's plan. ``--grid``/``--preset`` together replace the recipe's grid and presets;
    every other flag replaces its own key. A grid key named twice (grid and preset) is refused."""
    base = load_recipe(recipe_path, overrides)
    cfg = base.sweep
    from_cli = bool(grid_items or presets)
    if from_cli:
        grid = parse_grid(grid_items) if grid_items else {}
        presets = presets or []
    else:
        grid = {k: _distinct(list(v), f"sweep.grid.{k}") for k, v in cfg.grid.items()}
        presets = cfg.presets
    for preset in presets:
        for key, values in preset_grid(preset, base).items():
            if key in grid:
                raise RecipeError(f"preset {preset}: {key} is also in the grid")
            grid[key] = values
    if not grid:
        raise RecipeError(
            f"{recipe_path}: nothing to sweep: give --grid KEY=V1,V2 or --preset NAME, or a sweep: "
            "section with grid or presets in the recipe"
        )
    jobs = cfg.jobs if jobs is None else jobs
    if jobs < 1:
        raise RecipeError(f"--jobs {jobs}: must be >= 1")
    return Plan(
        grid=grid,
        seeds=list(cfg.seeds if seeds is None else seeds),
        seed_keys=tuple(cfg.seed_keys if seed_keys is None else seed_keys),
        name=cfg.name if name is None else name,
        jobs=jobs,
        gpus_per_arm=cfg.gpus_per_arm,
    )


def run_sweep(
    recipe_path: Path,
    grid: dict[str, list[Any]],
    seeds: list[int],
    overrides: list[str] = (),
    name: str = "",
    seed_keys: tuple[str, ...] = SEED_KEYS,
    jobs: int = 1,
    gpus_per_arm: int | None = None,
    donors: list[Path] = (),
) -> Path:
    """Run every arm (sharing identical stages), then compare; the sweep folder. ``jobs`` > 1 runs
    that many arms at once (``launch/sweep_jobs.py``). ``donors``: run folders outside the sweep whose
    identical stages the arms share too (``ssp sweep --from RUN``: branch a sweep from a run)."""
    from ssp.launch.runner import run_pipeline

    base = load_recipe(recipe_path, list(overrides))
    folder = Path(base.output_root) / (name or f"{base.run_name}-sweep")
    arms = expand(recipe_path, grid, seeds, list(overrides), folder, seed_keys)
    spec = {
        "recipe": str(recipe_path),
        "recipe_text": Path(recipe_path).read_text(),
        "grid": grid,
        "seeds": seeds,
        "overrides": list(overrides),
        "seed_keys": list(seed_keys),
    }
    pairs = [(a.name, a.recipe) for a in arms]
    slots = gpu_slots(jobs, gpus_per_arm, pairs) if jobs > 1 else []  # a bad split fails before any folder
    _check_folder(folder, spec)
    if jobs > 1:
        run_concurrently(pairs, folder, slots, list(donors))
    else:
        for i, arm in enumerate(arms, start=1):
            log.info("sweep %s: arm %d of %d: %s", folder.name, i, len(arms), arm.name)
            run_pipeline(arm.recipe, donors=[folder, *donors])
    from ssp.evaluation.compare import compare_runs
    from ssp.launch.run_state import stale_stages

    if all(EvalOutputs.STAGE in a.recipe.stages for a in arms):  # each arm has results to compare
        from ssp.launch.tracking import log_comparison

        out = folder / "compare"
        compare_runs([folder / a.name for a in arms], out, by=list(grid), check=stale_stages)
        result = json.loads((out / "compare.json").read_text())
        log_comparison(base, folder, result, sorted(out.glob("*.png")))
    return folder
