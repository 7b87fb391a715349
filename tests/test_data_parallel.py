"""Every GPU of a node for sampling: seeded shards over several engine processes sample exactly as
one engine does. On this CPU machine the engines are processes sharing the cores; the code path
(processes, pipes, shard scheduling, seeds) is the one a GPU node runs, only CUDA_VISIBLE_DEVICES
differs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssp.core.errors import RecipeError
from ssp.core.manifest import Manifest
from ssp.launch.runner import execute_here
from ssp.sampling.data_parallel import SamplingError, ShardedGenerator, engine_gpu_sets, shards
from ssp.sampling.generation import GenerationConfig, SamplingParams

from .helpers.scripted_model import build_scripted_model
from .helpers.scripted_run import scripted_probe_run


def test_engines_get_disjoint_gpu_sets():
    cfg = GenerationConfig(backend="vllm", data_parallel="auto", tensor_parallel_size=2)
    assert engine_gpu_sets(cfg, ["0", "1", "2", "3", "4", "5", "6", "7"]) == ["0,1", "2,3", "4,5", "6,7"]
    assert engine_gpu_sets(GenerationConfig(data_parallel=3), ["4", "5", "6"]) == ["4", "5", "6"]
    assert engine_gpu_sets(GenerationConfig(data_parallel="auto"), []) == [None]  # a CPU machine
    assert engine_gpu_sets(GenerationConfig(data_parallel=2), []) == [None, None]
    with pytest.raises(
        RecipeError, match=r"data_parallel=3 x generation.tensor_parallel_size=2 needs 6 GPUs"
    ):
        engine_gpu_sets(
            GenerationConfig(backend="vllm", data_parallel=3, tensor_parallel_size=2), list("0123")
        )
    assert [list(r) for r in shards(7, 3)] == [[0, 1, 2], [3, 4, 5], [6]]


def _scripted_probe(root: Path, *overrides: str) -> tuple[dict, list[dict]]:
    """The probe stage on two scripted checkpoints (P(7) = 0.6 and 0.3): 16 problems x 8 samples."""
    import pyarrow.parquet as pq

    recipe, _ = scripted_probe_run(root, (0.6, 0.3), *overrides)
    execute_here("probe", recipe)
    table = json.loads((recipe.run_dir / "probe" / "probe_table.json").read_text())
    samples = [
        pq.read_table(recipe.run_dir / "probe" / "completions" / f"checkpoint-{s}.parquet").to_pylist()
        for s in (100, 200)
    ]
    entry = Manifest(recipe.run_dir).stage("probe")
    name = lambda path: Path(path).name  # noqa: E731 - the two runs' folders differ
    return {
        "table": {name(c): row for c, row in table["table"].items()},
        "specialists": {d: name(c) for d, c in table["specialists"].items()},
        "config_hash": entry["config_hash"],  # the probe's config sections, engines left out
    }, samples


@pytest.mark.slow
def test_two_engine_processes_give_the_table_of_one(tmp_path):
    """16 prompts in shards of 3 (6 shards): one engine in the stage's process against two engine
    processes taking shards as they come. Every sample's text, the Pass@k table and the specialists
    must be identical, and the hash of the stage's config too (engines do not change results). Sampling
    really is random here (P(7) = 0.6), so a shard sampled with another seed, or shards put back in
    another order, changes the texts."""
    one, samples_one = _scripted_probe(tmp_path / "one", "generation.shard_prompts=3")
    two, samples_two = _scripted_probe(
        tmp_path / "two", "generation.shard_prompts=3", "generation.data_parallel=2"
    )
    assert samples_two == samples_one
    assert two == one
    texts = [s["text"] for s in samples_one[0]]
    assert 0.3 < sum("7" in t for t in texts) / len(texts) < 0.9  # sampled, not one answer repeated
    # a shard's samples depend on its seed: the same prompts in one shard sample otherwise
    whole, samples_whole = _scripted_probe(tmp_path / "whole", "generation.shard_prompts=16")
    assert [s["text"] for s in samples_whole[0]] != texts


@pytest.mark.slow
def test_an_engine_that_fails_stops_the_call_naming_it(tmp_path):
    """A model folder every engine fails to load: the error names the engine and the cause, and no
    engine process is left running."""
    bad = tmp_path / "bad"
    build_scripted_model(bad, p=0.5)
    (bad / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(SamplingError, match=r"engine [01] \(CPU\) failed during 'load': .*") as err:
        ShardedGenerator(bad, GenerationConfig(data_parallel=2))
    assert "safetensors" in str(err.value).lower() or "header" in str(err.value).lower(), err.value


@pytest.mark.slow
def test_shards_are_the_backends_own_calls_with_seed_plus_k(tmp_path):
    """The contract, computed independently with the bare backend: shard k of a call is the
    backend's call on those prompts with seed + k, and the shards come back in prompt order,
    whichever of two engine processes sampled them. A call that fits one shard is the backend's own
    call with the call's seed (runs from before data_parallel keep their samples)."""
    from dataclasses import replace

    from ssp.sampling.generation import make_backend

    model = build_scripted_model(tmp_path / "m", p=0.5)
    prompts = [[{"role": "user", "content": f"Question {i}."}] for i in range(5)]
    params = SamplingParams(n=6, temperature=1.0, max_new_tokens=4, seed=3)
    bare = make_backend(model, GenerationConfig())
    try:
        expected = [
            outs
            for k, part in enumerate((prompts[0:2], prompts[2:4], prompts[4:5]))
            for outs in bare.generate(part, replace(params, seed=3 + k))
        ]
        whole = bare.generate(prompts, params)
    finally:
        bare.close()
    sharded = ShardedGenerator(model, GenerationConfig(data_parallel=2, shard_prompts=2))
    try:
        assert sharded.generate(prompts, params) == expected
    finally:
        sharded.close()
    one = ShardedGenerator(model, GenerationConfig())
    try:
        assert one.generate(prompts, params) == whole
    finally:
        one.close()
    assert whole != expected  # the seeds matter: the comparisons above have power
