"""Shared fixtures: a small, fast version of the tiny recipe, written under pytest's tmp_path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# One OpenMP thread per process, for the test processes and every process they start (torchrun
# workers, engines, reward pools). Two xdist workers on two cores, each running jobs of two or three
# processes, every one with torch's default of a thread per core, spin-waited on each other: the same
# SFT and MGPO test files took 151 s with the default and 107 s with one thread (docs/benchmarks.md).
# Before anything imports torch; an OMP_NUM_THREADS already set wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


def _ssp_importable() -> None:
    """``ssp`` is the checkout's folders under one namespace (pyproject.toml), found through the
    editable install. Run from a copy that was never installed (a lent GPU machine carries its
    packages on PYTHONPATH, docs/install.md), a folder holding one link, ``ssp`` -> the checkout, goes
    on sys.path and on PYTHONPATH for every process the tests start."""
    import importlib.util
    import tempfile

    try:
        if importlib.util.find_spec("ssp.config") is not None:
            return
    except ModuleNotFoundError:
        pass
    folder = Path(tempfile.mkdtemp(prefix="ssp-namespace-"))
    (folder / "ssp").symlink_to(Path(__file__).resolve().parents[1], target_is_directory=True)
    sys.path.insert(0, str(folder))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))


_ssp_importable()

from ssp.config.recipe import Recipe, load_recipe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "recipes" / "tiny.yaml"

# Small enough that data + a few SFT steps take seconds on 2 CPU cores.
FAST = [
    "data.train_problems_per_domain=30",
    "data.probe_problems_per_domain=4",
    "data.rl_problems_per_domain=4",
    "data.eval_problems_per_domain=4",
    "data.solutions_per_problem=2",
    "tiny_model.num_hidden_layers=1",
    "tiny_model.vocab_size=320",
    "sft.max_steps=8",
    "sft.save_every=4",
    "sft.logging_steps=1",
    "sft.per_device_train_batch_size=8",
    "sft.eval_batch_size=16",
    "sft.eval_max_new_tokens=24",
    "probe.every=1",
    "probe.n_samples=4",
    "probe.k=[1,2,4]",
    "probe.select_k=4",
    "probe.max_new_tokens=32",
    "probe.batch_size=128",
    # the math half of the demo (its code domain, code probe/eval/RL: tests/test_tiny_code.py,
    # tests/test_rl_code.py, tests/test_code_sources.py)
    "data.domains=[algebra,number_theory,counting,statistics]",
    "~probe.reward",  # back to the default math_correctness (a key=value would merge the code options in)
    "rl.phases=[{name: math, prompts: rl, rewards: [{name: math_correctness, weight: 1.0, correctness: true}], "
    "learning_rate: 1.0e-4, dynamic_sampling: true, trl: {loss_type: dapo, epsilon: 0.2}}]",
    "eval.benchmarks=[{name: tiny_heldout}]",
    "rl.phases[0].max_steps=2",
    "rl.phases[0].num_generations=4",
    "rl.phases[0].per_device_train_batch_size=8",
    "rl.phases[0].max_completion_length=16",
    "rl.phases[0].max_refills=1",
    "rl.heldout_every=0",  # the held-out curve has its own test (tests/test_rl.py)
    "rl.save_every=1",
    "eval.benchmarks[0].n_samples=4",
    "eval.benchmarks[0].max_new_tokens=24",
    "eval.batch_size=64",
    "tracking.report_to=none",
    "generation.backend=hf",  # vLLM has its own tests (tests/test_generation_vllm.py): no engine per stage test
]

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "offline")


def fast_recipe(root: Path, *extra: str) -> Recipe:
    return load_recipe(TINY, [f"output_root={root}", *FAST, *extra])


def ssp_cmd(*args: str) -> list[str]:
    """The `ssp` console script, through this interpreter (so it works without PATH set up)."""
    return [sys.executable, "-m", "ssp.launch.cli", *args]


def prompt_dataset(problems: list[str], **columns: list):
    """A TRL prompt dataset: one chat user turn per problem, plus any extra columns."""
    import datasets

    return datasets.Dataset.from_list(
        [
            {"prompt": [{"role": "user", "content": p}], **{k: v[i] for k, v in columns.items()}}
            for i, p in enumerate(problems)
        ]
    )


def tiny_grpo_args(output_dir: Path, **overrides) -> dict:
    """GRPOConfig / MGPOConfig keyword arguments for one fast CPU step on the tiny model."""
    return {
        "output_dir": str(output_dir),
        "max_steps": 1,
        "per_device_train_batch_size": 8,
        "num_generations": 4,
        "max_completion_length": 12,
        "report_to": "none",
        "use_cpu": True,
        "save_strategy": "no",
        "seed": 0,
        **overrides,
    }


@pytest.fixture(scope="module")
def tiny_rl_data(tmp_path_factory):
    """The fast recipe's data stage: (the tiny model folder, the RL prompt rows)."""
    import json

    from ssp.core.manifest import Manifest
    from ssp.launch.runner import run_stage

    recipe = fast_recipe(tmp_path_factory.mktemp("rl-data"))
    run_stage("data", recipe)
    outputs = Manifest(recipe.run_dir).stage("data")["outputs"]
    return outputs["model"], [json.loads(line) for line in open(outputs["rl"])]


@pytest.fixture
def recipe(tmp_path: Path) -> Recipe:
    return fast_recipe(tmp_path)
