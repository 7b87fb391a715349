"""What the launcher knows of a stage, declared in the stage's own module as ``SPEC``.

    SPEC = StageSpec(
        "probe", run, needs=("data", "sft"), distributed=False,
        sections=lambda r: (r.probe, sampling_section(r), r.data.prompt_suffix),
        gpus=engine_gpus, preflight=preflight, report=report,
    )

``launch/stages.py`` lists the specs in pipeline order (the table); the runner, preflight, the
torchrun worker and the run report read everything stage-specific from here and name no stage
themselves. Each field is a function of the recipe so that one spec serves every recipe.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ssp.config.recipe import Recipe, to_container
from ssp.core.checks import Checks
from ssp.core.context import StageContext, StageResult
from ssp.core.manifest import Manifest


@dataclass(frozen=True)
class Around:
    """What a distributed stage starts around its torchrun workers (RL's own vLLM server): the
    workers' process count and environment, and the service to hold open while they run."""

    nproc: int
    env: dict[str, str]
    service: Callable[[], AbstractContextManager[Any]]


def _nothing(*_: Any) -> list[str]:
    return []


@dataclass(frozen=True)
class StageSpec:
    name: str
    run: Callable[[Recipe, StageContext], StageResult]  # under torchrun: launch/worker.py calls it
    needs: tuple[str, ...] | Callable[[Recipe], tuple[str, ...]]  # upstream stages whose outputs it reads
    distributed: bool  # launched through torchrun with the stage's process count
    sections: Callable[[Recipe], tuple]  # config the stage depends on (hashed)
    external_files: Callable[[Recipe], list[str]] = lambda r: []  # files outside the run it reads
    # a distributed stage's ``<name>.nproc_per_node`` as the recipe gives it: a count or "auto"
    nproc_setting: Callable[[Recipe], int | str] = lambda r: 1
    # GPUs a non-distributed stage occupies (its cost): a vLLM engine spans tensor_parallel_size
    gpus: Callable[[Recipe], int] = lambda r: 1
    # GPUs a training stage holds besides its processes' (rl's own vLLM server)
    extra_gpus: Callable[[Recipe], int] = lambda r: 0
    # what the recipe refers to for this stage, checked before anything runs (core/checks.py)
    preflight: Callable[[Recipe, Checks], None] = lambda r, c: None
    # a distributed stage's launch: None, or what to start around its workers (checks only: it
    # starts nothing itself); the bool says whether the run spans several nodes
    around: Callable[[Recipe, Manifest, bool], Around | None] = lambda r, m, multi: None
    # torchrun workers initialise the process group through DeepSpeed
    deepspeed: Callable[[Recipe], bool] = lambda r: False
    # the run report's lines for the completed stage (launch/report.py puts them in pipeline order)
    report: Callable[[Recipe, Manifest], list[str]] = _nothing
    # the tables `make demo` prints for the completed stage
    results: Callable[[Recipe, Manifest], list[str]] = _nothing
    # a Slurm job's checks of its shape for this stage (the job's node count): RecipeError
    job_check: Callable[[Recipe, int], None] = lambda r, nodes: None
    # what the job script says of the stage when it runs on one node
    on_one_node: str = "on the first node, every GPU of it sampling (generation.data_parallel)"

    def upstream(self, recipe: Recipe) -> tuple[str, ...]:
        return self.needs(recipe) if callable(self.needs) else self.needs

    def nproc(self, recipe: Recipe) -> int:
        """The processes per node: ``nproc_setting`` with "auto" resolved against the visible GPUs."""
        from ssp.train.device import resolve_nproc

        return resolve_nproc(self.nproc_setting(recipe), f"{self.name}.nproc_per_node")


# --------------------------------------------------------------- what several specs share


def sampling_section(r: Recipe) -> dict[str, Any]:
    """The generation config as results depend on it: how many engines sample is left out (the
    seeded shards make 1 engine and 8 sample alike, sampling/data_parallel.py), so moving a run to
    more GPUs does not redo its sampling stages; so is how long a silent engine is waited for
    (``engine_timeout_s``), which changes no sample."""
    sampling = to_container(replace(r.generation, data_parallel=1))
    sampling.pop("engine_timeout_s")
    return sampling


def engine_gpus(r: Recipe) -> int:
    """GPUs a sampling stage holds: every engine's (data_parallel x tensor_parallel_size for vLLM)."""
    from ssp.sampling.data_parallel import engine_count, gpus_per_engine

    return engine_count(r.generation) * gpus_per_engine(r.generation)


def benchmark_files(r: Recipe) -> list[str]:
    return [b.source for b in r.eval.benchmarks if b.source and Path(b.source).exists()]


def check_benchmarks(recipe: Recipe, checks: Checks) -> None:
    """Every benchmark of ``eval.benchmarks``: a local file, or its hub dataset (an empty source:
    the data stage's held-out split). Read by eval, and by a built corpus's decontamination."""
    from ssp.evaluation.benchmarks import BENCHMARKS

    for j, bench in enumerate(recipe.eval.benchmarks):
        ref = bench.source or BENCHMARKS[bench.name].hub[0]
        if ref:
            checks.dataset(ref, f"eval.benchmarks[{j}].source")


def check_training_settings(recipe: Recipe, checks: Checks, nproc_key: str, nproc: int | str) -> None:
    """What every training stage shares: the starting model's attention kernel, and a process count
    of ``auto`` (1 CPU process on a machine without GPUs)."""
    if recipe.model.attn_implementation == "flash_attention_2":
        checks.gpu_only("model.attn_implementation=flash_attention_2")
    if nproc == "auto":
        checks.auto_processes.append(f"{nproc_key}=auto")


def check_code_rewards(key: str, name: str, options: dict[str, Any], checks: Checks) -> None:
    """A reward that runs programs (``code_tests``, or a ``by_domain`` with a code domain): its
    sandbox is checked once for all stages (launch/preflight.py)."""
    from ssp.reward.by_domain import code_tests_options

    for sub in code_tests_options(name, options):
        checks.code_reward(key, sub)


def check_probe_reward(recipe: Recipe, checks: Checks) -> None:
    """The probe's reward, which probe and merge (its held-out comparison) sample with."""
    check_code_rewards("probe.reward", recipe.probe.reward.name, recipe.probe.reward.options, checks)
