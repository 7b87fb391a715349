"""The pipeline's stages: which module runs each, what it reads, which config it depends on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from ssp.config.eval import MODEL_ALIASES
from ssp.config.recipe import STAGE_ORDER, Recipe, to_container
from ssp.stages import data, merge, probe, rl, sft
from ssp.stages import eval as eval_stage
from ssp.train.device import resolve_nproc


@dataclass(frozen=True)
class StageSpec:
    name: str
    module: (
        ModuleType  # its run(recipe, ctx) -> StageResult runs the stage (under torchrun: launch/worker.py)
    )
    needs: tuple[str, ...] | Callable[[Recipe], tuple[str, ...]]  # upstream stages whose outputs it reads
    distributed: bool  # launched through torchrun with the stage's process count
    sections: Callable[[Recipe], tuple]  # config the stage depends on (hashed)
    external_files: Callable[[Recipe], list[str]] = lambda r: []  # files outside the run it reads
    nproc: Callable[[Recipe], int] = lambda r: 1
    # GPUs a non-distributed stage occupies (its cost): a vLLM engine spans tensor_parallel_size
    gpus: Callable[[Recipe], int] = lambda r: 1
    # GPUs a training stage holds besides its processes' (rl's own vLLM server)
    extra_gpus: Callable[[Recipe], int] = lambda r: 0

    def upstream(self, recipe: Recipe) -> tuple[str, ...]:
        return self.needs(recipe) if callable(self.needs) else self.needs


def _data_files(r: Recipe) -> list[str]:
    if r.data.source == "build":  # local sources, and the benchmarks decontaminated against
        local = [s.path for s in r.data.sources] + list(r.data.sampled_models().values())
        local = [p for p in local if Path(p).exists()]
        return local + list(r.data.build.decontaminate_files.values()) + _benchmark_files(r)
    if r.data.source != "files":
        return []
    return [
        p for p in (r.data.train_file, r.data.rl_file, r.data.eval_file, *r.data.probe_files.values()) if p
    ]


def _sft_files(r: Recipe) -> list[str]:
    files = [r.sft.deepspeed] if r.sft.deepspeed else []
    if r.model.name_or_path != "tiny" and Path(r.model.name_or_path).exists():
        files.append(r.model.name_or_path)
    return files


def _engine_gpus(r: Recipe) -> int:
    """GPUs a sampling stage holds: every engine's (data_parallel x tensor_parallel_size for vLLM)."""
    from ssp.sampling.data_parallel import engine_count, gpus_per_engine

    return engine_count(r.generation) * gpus_per_engine(r.generation)


def _data_gpus(r: Recipe) -> int:
    return _engine_gpus(r) if r.data.sampled_models() else 1


def _sampling(r: Recipe) -> dict[str, Any]:
    """The generation config as results depend on it: how many engines sample is left out (the
    seeded shards make 1 engine and 8 sample alike, sampling/data_parallel.py), so moving a run to
    more GPUs does not redo its sampling stages; so is how long a silent engine is waited for
    (``engine_timeout_s``), which changes no sample."""
    sampling = to_container(replace(r.generation, data_parallel=1))
    sampling.pop("engine_timeout_s")
    return sampling


def _eval_needs(r: Recipe) -> tuple[str, ...]:
    used = {MODEL_ALIASES[m] for m in r.eval.models if m in MODEL_ALIASES}
    return tuple(s for s in STAGE_ORDER if s == "data" or s in used)


def _benchmark_files(r: Recipe) -> list[str]:
    return [b.source for b in r.eval.benchmarks if b.source and Path(b.source).exists()]


def _eval_files(r: Recipe) -> list[str]:
    models = [m for m in r.eval.models if m not in MODEL_ALIASES and Path(m).exists()]
    return models + _benchmark_files(r)


STAGES: dict[str, StageSpec] = {
    "data": StageSpec(
        "data",
        data,
        needs=(),
        distributed=False,
        # it hands on the starting model; a built corpus is decontaminated against eval's benchmarks
        sections=lambda r: (
            (r.data, r.tiny_model, r.model.name_or_path)
            + ((r.eval.benchmarks,) if r.data.source == "build" else ())
            + ((_sampling(r),) if r.data.sampled_models() else ())
        ),
        external_files=_data_files,
        gpus=_data_gpus,
    ),
    "sft": StageSpec(
        "sft",
        sft,
        needs=("data",),
        distributed=True,
        sections=lambda r: (r.model, r.sft),
        external_files=_sft_files,
        nproc=lambda r: resolve_nproc(r.sft.nproc_per_node, "sft.nproc_per_node"),
    ),
    "probe": StageSpec(
        "probe",
        probe,
        needs=("data", "sft"),
        distributed=False,
        sections=lambda r: (r.probe, _sampling(r), r.data.prompt_suffix),
        gpus=_engine_gpus,
    ),
    "merge": StageSpec(
        "merge",
        merge,
        needs=("data", "sft", "probe"),
        distributed=False,
        sections=lambda r: (r.merge, r.probe, _sampling(r), r.data.prompt_suffix),
        gpus=_engine_gpus,
    ),
    "rl": StageSpec(
        "rl",
        rl,
        needs=("data", "merge"),
        distributed=True,
        sections=lambda r: (r.rl, r.probe, _sampling(r), r.data.prompt_suffix),
        nproc=lambda r: resolve_nproc(r.rl.nproc_per_node, "rl.nproc_per_node"),
        extra_gpus=lambda r: r.rl.rollout.server_gpus,
    ),
    "eval": StageSpec(
        "eval",
        eval_stage,
        needs=_eval_needs,
        distributed=False,
        sections=lambda r: (r.eval, _sampling(r), r.data.prompt_suffix),
        external_files=_eval_files,
        gpus=_engine_gpus,
    ),
}
assert list(STAGES) == STAGE_ORDER, "every stage in STAGE_ORDER needs a StageSpec"


def file_identity(path: str) -> dict[str, Any]:
    """Cheap identity of an external input: size and modification time (not a content hash:
    corpora can be many GB). A missing file is reported by the stage itself."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        return {
            "path": str(p),
            "files": len(files),
            "bytes": sum(f.stat().st_size for f in files),
            "mtime_ns": max((f.stat().st_mtime_ns for f in files), default=0),
        }
    if p.is_file():
        st = p.stat()
        return {"path": str(p), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
    return {"path": str(p), "missing": True}
