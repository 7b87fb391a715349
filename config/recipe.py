"""Recipes: a typed schema merged with a YAML file and `key=value` overrides.

    recipe = load_recipe("recipes/tiny.yaml", ["sft.learning_rate=3e-4"])

The schema is a tree of dataclasses (one per stage, a docstring per field). OmegaConf merges
schema <- YAML <- command line; a misspelt key or a wrong type fails here, at start-up, naming
the full key path and the file or argument it came from. Each dataclass validates its values
in ``__post_init__``; those errors are re-raised with the full path too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ssp.config.data import DataConfig
from ssp.config.eval import EvalConfig
from ssp.config.sweep import SweepConfig
from ssp.config.tracking import TrackingConfig
from ssp.config.train import MergeConfig, ModelConfig, ProbeConfig, RLConfig, SFTStageConfig
from ssp.core.cost import CostConfig
from ssp.core.errors import FieldError, RecipeError, check
from ssp.data_pipeline.tiny.model import TinyModelConfig
from ssp.sampling.generation import GenerationConfig

# The pipeline, in order.
STAGE_ORDER = ["data", "sft", "probe", "merge", "rl", "eval"]


@dataclass
class Recipe:
    """A whole pipeline run."""

    run_name: str = "tiny"
    """Folder name under output_root; one folder per stage inside it."""
    output_root: str = "runs"
    """Where runs are written (relative paths are relative to the working directory)."""
    stages: list[str] = field(default_factory=lambda: list(STAGE_ORDER))
    """Stages `ssp run` executes, a subset of the pipeline order."""
    keep_replaced: int = 1
    """A stage folder made stale by a config change or --force is moved aside to
    <stage>.replaced-<time>, not deleted; this many of those are kept per stage (the newest), older
    ones are deleted. 0 = delete at once."""
    tiny_model: TinyModelConfig = field(default_factory=TinyModelConfig)
    """Shape of the tiny task's model and tokenizer (used when model.name_or_path is 'tiny')."""
    data: DataConfig = field(default_factory=DataConfig)
    """The data stage."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The starting model."""
    sft: SFTStageConfig = field(default_factory=SFTStageConfig)
    """The SFT stage."""
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    """The sampling engine (vLLM or transformers) of probing, evaluation and the RL filter."""
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    """Diversity probing of the SFT checkpoints."""
    merge: MergeConfig = field(default_factory=MergeConfig)
    """Expert fusion into the spectrum model."""
    rl: RLConfig = field(default_factory=RLConfig)
    """MGPO reinforcement learning from the spectrum model."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Benchmark evaluation of the base, spectrum and signal models under the report's protocol."""
    cost: CostConfig = field(default_factory=CostConfig)
    """GPU-hour and dollar accounting, and an optional budget."""
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    """W&B / TensorBoard reporting."""
    sweep: SweepConfig = field(default_factory=SweepConfig)
    """The ablation ``ssp sweep RECIPE`` runs (arms, seeds); read by no stage."""

    def __post_init__(self):
        check(
            self,
            "run_name",
            bool(self.run_name) and "/" not in self.run_name,
            f"must be a non-empty folder name, got {self.run_name!r}",
        )
        check(self, "keep_replaced", self.keep_replaced >= 0, f"must be >= 0, got {self.keep_replaced}")
        unknown = [s for s in self.stages if s not in STAGE_ORDER]
        check(self, "stages", not unknown, f"unknown stages {unknown}; known: {STAGE_ORDER}")
        check(
            self,
            "stages",
            self.stages == [s for s in STAGE_ORDER if s in self.stages],
            f"must follow the pipeline order {STAGE_ORDER}, got {self.stages}",
        )

    @property
    def run_dir(self) -> Path:
        return Path(self.output_root) / self.run_name


def _paths_of_type(node: Any, kind: type, prefix: str = "") -> list[str]:
    """Key paths of every config node of dataclass type ``kind``."""
    if isinstance(node, DictConfig):
        found = [prefix] if OmegaConf.get_type(node) is kind else []
        return found + [
            p for k in node.keys() for p in _paths_of_type(node._get_node(k), kind, f"{prefix}{k}.")
        ]
    if isinstance(node, ListConfig):
        return [
            p
            for i in range(len(node))
            for p in _paths_of_type(node._get_node(i), kind, f"{prefix.rstrip('.')}[{i}].")
        ]
    return []


def _find_path(node: Any, owner: object, prefix: str = "") -> str | None:
    """Key path of the config node that built ``owner`` (the object whose ``__post_init__``
    failed): the node of the same type holding the same values. Handles lists, where a type
    alone (a RewardSpec) could sit at many paths."""
    if isinstance(node, DictConfig):
        if OmegaConf.get_type(node) is type(owner):
            try:
                if OmegaConf.to_container(node, resolve=True) == dataclasses.asdict(owner):
                    return prefix
            except Exception:  # noqa: BLE001 - an unresolvable sibling: keep searching
                pass
        children = ((f"{prefix}{k}.", node._get_node(k)) for k in node.keys())
    elif isinstance(node, ListConfig):
        children = ((f"{prefix.rstrip('.')}[{i}].", node._get_node(i)) for i in range(len(node)))
    else:
        return None
    for child_prefix, child in children:
        found = _find_path(child, owner, child_prefix)
        if found is not None:
            return found
    return None


def _omegaconf_message(err: OmegaConfBaseException) -> str:
    key = getattr(err, "full_key", None)
    msg = str(err).split("\n")[0]
    return f"{key}: {msg}" if key else msg


def _yaml_message(err: yaml.YAMLError) -> str:
    """A YAML error in one line: what went wrong and where (line, column)."""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


def _source_of(key: str, path: Path | None, overrides) -> str:
    """Where the value at ``key`` came from: the last command-line override setting it (or a
    section or list holding it), else the recipe file."""
    for item in reversed(list(overrides)):
        set_key = item.split("=", 1)[0].strip().lstrip("~")
        if key == set_key or key.startswith((f"{set_key}.", f"{set_key}[")):
            return f"command-line override {item!r}"
    return f"{path}" if path else "recipe"


def _reset(cfg: DictConfig, key: str, item: str) -> None:
    """``~key``: the value at ``key`` replaced by the schema's default, not merged with (a ``key=``
    override merges a mapping into the recipe's: ``~probe.reward`` is how a recipe's by_domain
    probe reward, options and all, goes back to math_correctness)."""
    if not key:
        raise RecipeError(f"override {item!r}: ~ needs a key (~probe.reward)")
    try:
        default = OmegaConf.select(OmegaConf.structured(Recipe), key, throw_on_missing=False, default=_NONE)
        if OmegaConf.select(cfg, key, default=_NONE) is _NONE:
            raise RecipeError(f"override {item!r}: {key} is not a key of the recipe")
        if default is _NONE:
            raise RecipeError(
                f"override {item!r}: {key} has no default to go back to (an entry of a list, or a key "
                "of a free-form mapping: set it with key=value)"
            )
        OmegaConf.update(cfg, key, default, merge=False)
    except OmegaConfBaseException as err:
        raise RecipeError(f"override {item!r}: {_omegaconf_message(err)}") from None


_NONE = object()


def load_recipe(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load and validate a recipe. ``path=None`` gives the schema's defaults (plus overrides)."""
    cfg: DictConfig = OmegaConf.structured(Recipe)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise RecipeError(f"recipe file not found: {path}")
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.load(path))
        except OmegaConfBaseException as err:
            raise RecipeError(f"{path}: {_omegaconf_message(err)}") from None
        except yaml.YAMLError as err:
            raise RecipeError(f"{path}: not valid YAML: {_yaml_message(err)}") from None
    for item in overrides:
        if item.startswith("~") and "=" not in item:  # Hydra's spelling: back to the schema's default
            _reset(cfg, item[1:].strip(), item)
            continue
        if "=" not in item:
            raise RecipeError(f"override {item!r} is not of the form key=value (or ~key)")
        key, raw = item.split("=", 1)
        try:
            value = OmegaConf.from_dotlist([f"v={raw}"])["v"]  # OmegaConf's own value grammar
            # update(), not a dotlist merge: it understands list indices (rl.phases[0].max_steps=7)
            OmegaConf.update(cfg, key.strip(), value, merge=True)
        except yaml.YAMLError as err:
            raise RecipeError(
                f"override {item!r}: the value is not valid YAML: {_yaml_message(err)}"
            ) from None
        except (OmegaConfBaseException, TypeError, IndexError, KeyError) as err:
            message = _omegaconf_message(err) if isinstance(err, OmegaConfBaseException) else f"{key}: {err}"
            raise RecipeError(f"override {item!r}: {message}") from None
    try:
        recipe = OmegaConf.to_object(cfg)
    except FieldError as err:
        where = _find_path(cfg, err.owner)
        if where is None:  # the owner's __post_init__ normalised a value: its type alone, if unique
            paths = _paths_of_type(cfg, type(err.owner))
            where = paths[0] if len(paths) == 1 else ""
        key = f"{where}{err.field}"
        raise RecipeError(f"{_source_of(key, path, overrides)}: {key}: {err.message}") from None
    except OmegaConfBaseException as err:  # e.g. a broken ${interpolation}
        raise RecipeError(f"{path or 'recipe'}: {_omegaconf_message(err)}") from None
    assert isinstance(recipe, Recipe)
    return recipe


def to_container(obj: Any) -> Any:
    """A recipe (or one of its sections) as plain dicts and lists."""
    return OmegaConf.to_container(OmegaConf.structured(obj), resolve=True)


def save_recipe(recipe: Recipe, path: str | Path) -> None:
    """Write the fully resolved recipe as YAML (what a stage subprocess loads back)."""
    import os
    import socket

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # every node's launcher writes the same file at once: a temp name of its own for each writer
    tmp = path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")
    tmp.write_text(OmegaConf.to_yaml(OmegaConf.structured(recipe)))
    tmp.replace(path)


def config_hash(*sections: Any) -> str:
    """A short stable hash of config sections (dataclasses or plain values)."""
    payload = [to_container(s) if dataclasses.is_dataclass(s) else s for s in sections]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
