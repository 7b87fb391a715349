"""Expert fusion: arithmetic on hand-made tensors, streaming equals naive, bad inputs, the CLI."""

import json
import os
import subprocess

import pytest
import torch
from safetensors.torch import load_file, save_file

from ssp.data_pipeline.tiny.model import TinyModelConfig, build_tiny_model, save_tiny_model
from ssp.data_pipeline.tiny.tokenizer import train_tokenizer
from ssp.stages.merge import checkpoint_weights
from ssp.train.fusion import MergeError, merge_checkpoints, parse_sources

from .conftest import ssp_cmd
from .helpers.scripted_model import build_scripted_model


def _folder(path, tensors, config=None):
    path.mkdir(parents=True)
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    (path / "config.json").write_text(json.dumps(config or {"model_type": "toy"}))
    (path / "optimizer.pt").write_bytes(b"training state, not model")
    return path


def test_weighted_average_of_hand_made_tensors(tmp_path):
    a = _folder(
        tmp_path / "a",
        {
            "w": torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
            "b": torch.tensor([1.0], dtype=torch.bfloat16),
            "steps": torch.tensor([7]),
        },
    )
    b = _folder(
        tmp_path / "b",
        {
            "w": torch.tensor([[5.0, 6.0], [7.0, 8.0]]),
            "b": torch.tensor([3.0], dtype=torch.bfloat16),
            "steps": torch.tensor([9]),
        },
    )
    out = merge_checkpoints([(a, 0.25), (b, 0.75)], tmp_path / "out")
    merged = load_file(str(out / "model.safetensors"))
    assert torch.equal(merged["w"], torch.tensor([[4.0, 5.0], [6.0, 7.0]]))
    assert merged["b"].dtype == torch.bfloat16 and merged["b"].item() == 2.5  # averaged in fp32, cast back
    assert merged["steps"].item() == 7  # integer buffers are not averaged: the first source's
    assert (out / "config.json").is_file() and not (out / "optimizer.pt").exists()
    assert json.loads((out / "merge_info.json").read_text())["weights"] == [0.25, 0.75]


@pytest.fixture(scope="module")
def three_models(tmp_path_factory):
    """Three tiny Qwen2 models with different random weights, one of them saved in shards."""
    root = tmp_path_factory.mktemp("models")
    tok = train_tokenizer(["What is 1 + 2? \\boxed{3}", "Solve for x: 2x = 4."] * 20, vocab_size=300)
    dirs = []
    for seed in range(3):
        model = build_tiny_model(TinyModelConfig(num_hidden_layers=2), tok, seed=seed)
        save_tiny_model(model, tok, root / f"m{seed}")
        dirs.append(root / f"m{seed}")
    sharded = root / "sharded"
    model = build_tiny_model(TinyModelConfig(num_hidden_layers=2), tok, seed=3)
    model.save_pretrained(sharded, max_shard_size="200KB")
    tok.save_pretrained(sharded)
    return dirs, sharded


def _naive(dirs, weights):
    from transformers import AutoModelForCausalLM

    states = [AutoModelForCausalLM.from_pretrained(d).state_dict() for d in dirs]
    return {k: sum(w * s[k] for w, s in zip(weights, states, strict=True)) for k in states[0]}


def test_streaming_merge_equals_naive_and_loads(three_models, tmp_path):
    from transformers import AutoModelForCausalLM

    dirs, _ = three_models
    weights = [0.5, 0.3, 0.2]
    out = merge_checkpoints(list(zip(dirs, weights, strict=True)), tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(out).state_dict()
    naive = _naive(dirs, weights)
    for k in naive:
        torch.testing.assert_close(merged[k], naive[k], rtol=0, atol=1e-6)
    assert {"tokenizer.json", "generation_config.json", "chat_template.jinja"} <= {
        p.name for p in out.iterdir()
    }


def test_sharded_sources_keep_their_layout(three_models, tmp_path):
    from transformers import AutoModelForCausalLM

    _, sharded = three_models
    out = merge_checkpoints([(sharded, 0.5), (sharded, 0.5)], tmp_path / "merged")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1, "the fixture should be sharded"
    original = AutoModelForCausalLM.from_pretrained(sharded).state_dict()
    merged = AutoModelForCausalLM.from_pretrained(out).state_dict()
    for k in original:
        torch.testing.assert_close(merged[k], original[k], rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda t: {**t, "w": torch.zeros(3, 2)},
            r"tensor 'w': shape \[2, 2\] in .*a/model.safetensors but \[3, 2\] in .*b/model.safetensors",
        ),
        (
            lambda t: {**t, "w": t["w"].to(torch.bfloat16)},
            r"tensor 'w': dtype F32 in .*a/model.safetensors but BF16 in .*b/model.safetensors",
        ),
        (lambda t: {"w": t["w"]}, r"tensor 'v' is in .*a/model.safetensors but missing from .*b"),
        (
            lambda t: {**t, "extra": torch.zeros(1)},
            r"tensor 'extra' is in .*b/model.safetensors but missing from .*a",
        ),
    ],
)
def test_incompatible_checkpoints_fail_naming_tensor_and_files(tmp_path, change, message):
    base = {"w": torch.ones(2, 2), "v": torch.ones(3)}
    a, b = _folder(tmp_path / "a", base), _folder(tmp_path / "b", change(dict(base)))
    with pytest.raises(MergeError, match=message):
        merge_checkpoints([(a, 0.5), (b, 0.5)], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.tmp-*")), "a temporary folder was left behind"


def test_weight_checks(tmp_path):
    a = _folder(tmp_path / "a", {"w": torch.ones(2)})
    b = _folder(tmp_path / "b", {"w": torch.zeros(2)})
    with pytest.raises(MergeError, match="must be >= 0"):
        merge_checkpoints([(a, 1.5), (b, -0.5)], tmp_path / "out")
    with pytest.raises(MergeError, match="sum to 0.8, not 1"):
        merge_checkpoints([(a, 0.4), (b, 0.4)], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    out = merge_checkpoints([(a, 0.4), (b, 0.4)], tmp_path / "out", normalize=True)
    assert torch.equal(load_file(str(out / "model.safetensors"))["w"], torch.full((2,), 0.5))
    with pytest.raises(MergeError, match="exists"):
        merge_checkpoints([(a, 1.0)], tmp_path / "out")


def test_a_checkpoint_chosen_by_several_domains_counts_once_per_domain():
    specialists = {"algebra": "c100", "counting": "c300", "statistics": "c300", "number_theory": "c300"}
    assert checkpoint_weights(specialists, {}) == {"c100": 0.25, "c300": 0.75}
    weights = {"algebra": 0.4, "counting": 0.2, "statistics": 0.2, "number_theory": 0.2}
    assert checkpoint_weights(specialists, weights) == pytest.approx({"c100": 0.4, "c300": 0.6})
    with pytest.raises(MergeError, match="no weight for domains \\['statistics'\\]"):
        checkpoint_weights(specialists, {"algebra": 0.5, "counting": 0.25, "number_theory": 0.25})
    with pytest.raises(MergeError, match="not probed: \\['geometry'\\]"):
        checkpoint_weights(specialists, {**weights, "geometry": 0.0})


def test_parse_sources():
    assert parse_sources(["a", "b"]) == [("a", 0.5), ("b", 0.5)]
    assert parse_sources(["/x/a:0.3", "b:0.7"]) == [("/x/a", 0.3), ("b", 0.7)]
    with pytest.raises(MergeError, match="every checkpoint"):
        parse_sources(["a:0.3", "b"])


@pytest.mark.slow
def test_cli(three_models, tmp_path):
    dirs, _ = three_models
    out = subprocess.run(
        ssp_cmd("merge", "--out", str(tmp_path / "cli"), str(dirs[0]), str(dirs[1])),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "cli" / "merge_info.json").read_text())["weights"] == [0.5, 0.5]
    bad = subprocess.run(
        ssp_cmd("merge", "--out", str(tmp_path / "bad"), f"{dirs[0]}:0.9", f"{dirs[1]}:0.3"),
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "sum to 1.2, not 1" in bad.stderr and not (tmp_path / "bad").exists()
    assert "set --normalize to rescale" in bad.stderr  # the flag the user types, not a parameter name
    again = subprocess.run(
        ssp_cmd("merge", "--out", str(tmp_path / "cli"), str(dirs[0]), str(dirs[1])),
        capture_output=True,
        text=True,
    )
    assert again.returncode == 2 and "pass --overwrite to replace it" in again.stderr


def test_row_chunks_give_the_same_result(three_models, tmp_path, monkeypatch):
    """Large tensors are averaged in row chunks; force one-row chunks and compare with naive."""
    from transformers import AutoModelForCausalLM

    import ssp.train.fusion as fusion

    monkeypatch.setattr(fusion, "CHUNK_ELEMENTS", 7)
    dirs, _ = three_models
    out = merge_checkpoints([(d, 1 / 3) for d in dirs], tmp_path / "chunked")
    merged = AutoModelForCausalLM.from_pretrained(out).state_dict()
    naive = _naive(dirs, [1 / 3] * 3)
    for k in naive:
        torch.testing.assert_close(merged[k], naive[k], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_a_truncated_checkpoint_is_refused_naming_its_file(three_models, tmp_path):
    """Half a safetensors file once merged "successfully", averaging zeros into 29 of 50 tensors."""
    import shutil

    dirs, _ = three_models
    broken = tmp_path / "broken"
    shutil.copytree(dirs[1], broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(MergeError, match=rf"{weights}: truncated or corrupt safetensors file"):
        merge_checkpoints([(dirs[0], 0.5), (broken, 0.5)], tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.tmp-*"))
    cli = subprocess.run(
        ssp_cmd("merge", "--out", str(tmp_path / "cli"), str(dirs[0]), str(broken)),
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 2 and str(weights) in cli.stderr and "Traceback" not in cli.stderr


def test_checkpoints_with_different_tokenizers_are_not_averaged(tmp_path):
    a = build_scripted_model(tmp_path / "a", p=0.5)
    b = build_scripted_model(tmp_path / "b", p=0.5, order=3)  # same shapes, tokens at other ids
    with pytest.raises(MergeError, match="have different tokenizers"):
        merge_checkpoints([(a, 0.5), (b, 0.5)], tmp_path / "out")
    same = build_scripted_model(tmp_path / "c", p=0.9)
    assert merge_checkpoints([(a, 0.5), (same, 0.5)], tmp_path / "ok").is_dir()


def test_what_a_killed_merge_left_is_removed_by_the_next(tmp_path):
    """kill -9 during the write leaves `.out.tmp-<pid>`; the next merge into the same place removes
    it (the pid is dead), and leaves alone the temporary folder of a merge still running."""
    import sys

    a = _folder(tmp_path / "a", {"w": torch.ones(2)})
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    leftover = tmp_path / f".out.tmp-{int(dead.stdout)}"
    (leftover / "sub").mkdir(parents=True)
    (leftover / "model.safetensors").write_bytes(b"half a file")
    running = tmp_path / f".out.tmp-{os.getppid()}"  # a live process's
    running.mkdir()
    merge_checkpoints([(a, 1.0)], tmp_path / "out")
    assert not leftover.exists() and running.exists()
