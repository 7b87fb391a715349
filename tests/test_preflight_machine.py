"""The preflight and ``ssp doctor RECIPE`` check what the recipe needs *on this machine*: GPUs
for a recipe set up for them, and every hub model or dataset either in the local hub cache or on
a hub this machine reaches. The audit (issue 29): the reference GPU recipe on a CPU machine
without hub access passed the doctor, trained its data and died 66 s into SFT with 151 lines of
hub tracebacks. No network here: "no hub" is HF_HUB_OFFLINE=1 with an empty HF_HOME, or an
endpoint on a closed local port; "no GPU" is this machine."""

from __future__ import annotations

import json
import socket
import time

import pytest

from ssp.core.errors import RecipeError
from ssp.core.outputs import DataOutputs

from .conftest import ROOT, TINY

REFERENCE = ROOT / "recipes" / "vibethinker_1p5b.yaml"
MODEL = "Qwen/Qwen2.5-Math-1.5B"


@pytest.fixture
def no_hub(tmp_path, monkeypatch):
    """Offline, with an empty cache; the recipes' relative paths (sft.deepspeed) from the checkout."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(ROOT)
    return tmp_path / "hf"


def _reference(tmp_path, *extra: str):
    from ssp.config.recipe import load_recipe

    return load_recipe(REFERENCE, [f"output_root={tmp_path}", "data.source=build", *extra])


def test_the_reference_recipe_fails_in_seconds_naming_each_key(no_hub, tmp_path):
    """`ssp doctor` of the reference recipe (problem pool built from the hub, then SFT): one line
    naming every hub reference that cannot be had here, and the GPU setting, in seconds."""
    from ssp.launch import doctor

    assert doctor._recipe([str(TINY), f"output_root={tmp_path}"])[0] == doctor.OK  # imports warm
    start = time.monotonic()
    status, detail = doctor._recipe(
        [str(REFERENCE), f"output_root={tmp_path}", "data.source=build", "stages=[data,sft]"]
    )
    took = time.monotonic() - start
    assert status == doctor.FAIL, detail
    assert took < 5, took
    assert "\n" not in detail
    for key in ("model.name_or_path", "data.teacher.model", "sft.bf16"):
        assert f"- {key}" in detail, (key, detail)
    for i, dataset in enumerate(["open-r1/OpenR1-Math-220k", "AI-MO/NuminaMath-1.5"]):
        assert f"- data.sources[{i}].path: '{dataset}' is not in the hub cache" in detail, detail
    assert "HF_HUB_OFFLINE=1" in detail


def test_a_hub_benchmark_and_the_base_model_of_eval_are_checked(no_hub, tmp_path):
    """eval: a benchmark without a local source reads the registry's hub dataset; `base` is
    model.name_or_path."""
    from ssp.launch.preflight import check_recipe

    recipe = _reference(tmp_path, "stages=[eval]", "eval.models=[base]", "eval.benchmarks=[{name: aime24}]")
    with pytest.raises(RecipeError) as info:
        check_recipe(recipe, ["eval"])
    text = str(info.value)
    assert "- eval.benchmarks[0].source: " in text and "is not in the hub cache" in text
    assert "- model.name_or_path: 'Qwen/Qwen2.5-Math-1.5B' is not in the hub cache" in text


def test_the_tiny_recipe_passes_offline_with_an_empty_cache(no_hub, tmp_path):
    """Its model is the one the data stage builds, its data generated, its benchmark the data stage's
    held-out split: nothing to fetch, no GPU asked for."""
    from ssp.config.recipe import load_recipe
    from ssp.launch import doctor
    from ssp.launch.preflight import check_recipe

    check_recipe(load_recipe(TINY, [f"output_root={tmp_path}"]), load_recipe(TINY).stages)
    status, detail = doctor._recipe([str(TINY), f"output_root={tmp_path}"])
    assert status == doctor.OK, detail


def _cache_model(hf_home, repo: str) -> None:
    """A model in the hub cache's layout: refs/main naming a snapshot with config, tokenizer, weights."""
    import torch
    from safetensors.torch import save_file

    repo_dir = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("0123abcd")
    (snapshot / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    (snapshot / "tokenizer_config.json").write_text("{}")
    save_file({"w": torch.zeros(4)}, str(snapshot / "model.safetensors"))


def test_a_cached_model_passes_offline_and_a_truncated_one_does_not(no_hub, tmp_path):
    from ssp.launch.preflight import check_recipe

    _cache_model(no_hub, MODEL)
    recipe = _reference(tmp_path, "stages=[sft]", "sft.bf16=null")
    from .helpers.scripted_run import complete

    complete(recipe, DataOutputs(model="(a test double)", data_card=""))
    check_recipe(recipe, ["sft"])
    weights = next((no_hub / "hub").rglob("model.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(RecipeError, match=r"- model.name_or_path: .*model.safetensors"):
        check_recipe(recipe, ["sft"])


def test_an_unreachable_hub_fails_fast_naming_the_key(no_hub, tmp_path, monkeypatch):
    """Online (no HF_HUB_OFFLINE), but the hub's endpoint does not answer: a closed local port."""
    from ssp.launch.preflight import check_recipe

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    recipe = _reference(tmp_path, "stages=[data,sft]", "sft.bf16=null")
    start = time.monotonic()
    with pytest.raises(RecipeError) as info:
        check_recipe(recipe, recipe.stages)
    assert time.monotonic() - start < 5
    text = str(info.value)
    assert f"- model.name_or_path: '{MODEL}' is not in the hub cache" in text
    assert f"cannot reach the hub (http://127.0.0.1:{port})" in text
    assert "- data.sources[3].path: 'zwhe99/DeepMath-103K'" in text


def test_gpu_settings_without_a_gpu_name_their_keys(no_hub, tmp_path):
    """This machine has no CUDA: the reference recipe's bf16 SFT and vLLM sleep mode are refused by
    key; the same recipe with those keys set for a CPU is not refused for GPUs."""
    import torch

    from ssp.launch.preflight import check_recipe

    assert not torch.cuda.is_available()
    recipe = _reference(
        tmp_path, "rl.rollout.enable_sleep_mode=true", "model.attn_implementation=flash_attention_2"
    )
    with pytest.raises(RecipeError) as info:
        check_recipe(recipe, recipe.stages)
    text = str(info.value)
    for key in (
        "sft.bf16=true",
        "rl.rollout.enable_sleep_mode=true",
        "model.attn_implementation=flash_attention_2",
    ):
        assert key in text, (key, text)
    assert "no CUDA GPU is visible" in text
    cpu = _reference(tmp_path, "sft.bf16=null", "rl.rollout.enable_sleep_mode=false")
    with pytest.raises(RecipeError) as info:  # the hub and missing files are left
        check_recipe(cpu, cpu.stages)
    assert "CUDA" not in str(info.value)
