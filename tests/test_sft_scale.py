"""SFT at scale, checked on CPU: padding-free and packed batches, the context extension, LoRA
(adapters through probe, merge and RL), and the throughput benchmark."""

import json
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ssp.config.train import ModelConfig
from ssp.core.errors import FieldError, RecipeError
from ssp.core.manifest import Manifest
from ssp.launch.runner import execute_here, run_stage
from ssp.train.checkpoints import complete_checkpoints, latest_checkpoint

from .conftest import FAST, TINY, fast_recipe, ssp_cmd
from .test_sft import _kill_job, _sft_job_until


def _corpus_of_mixed_lengths(vocab: int) -> list[dict]:
    """Six pre-tokenized examples of very different lengths (prompt masked)."""
    g = torch.Generator().manual_seed(3)
    rows = []
    for t in (9, 40, 17, 63, 5, 28):
        ids = torch.randint(2, vocab, (t,), generator=g).tolist()
        rows.append({"input_ids": ids, "completion_mask": [0] * (t // 3) + [1] * (t - t // 3)})
    return rows


def _loss_and_grads(trainer):
    """Loss and gradients of the trainer's first batch (every example of the corpus)."""
    batch = next(iter(trainer.get_train_dataloader()))
    model = trainer.model
    model.zero_grad()
    loss = trainer.compute_loss(model, batch)
    loss.backward()
    return batch, loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.slow
def test_padded_padding_free_and_packed_batches_give_one_loss_and_gradient(tmp_path):
    """All six examples in one micro-batch, three ways: padded rows, one padding-free row, one
    packed row. Each gives the loss and gradients of the examples run one at a time without any
    batching (computed here with the model's plain forward): attention stays inside each example."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from benchmarks.sft_throughput import write_random_model
    from ssp.stages.sft import build_trainer

    model_dir = write_random_model("tiny", tmp_path / "model", 512)
    rows = _corpus_of_mixed_lengths(512)
    tok = AutoTokenizer.from_pretrained(model_dir)

    # independent: one example at a time, NLL summed over completion tokens / their count
    ref = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    total, count = 0.0, 0
    for r in rows:
        ids = torch.tensor([r["input_ids"]])
        logp = torch.log_softmax(ref(input_ids=ids).logits[0, :-1].double(), -1)
        target = ids[0, 1:]
        keep = torch.tensor(r["completion_mask"][1:]).bool()
        total = total - logp[torch.arange(len(target)), target][keep].sum()
        count += int(keep.sum())
    expected = total / count
    expected.backward()
    expected_grads = {n: p.grad for n, p in ref.named_parameters()}

    ways = {
        "padded": [],
        "padding_free": ["sft.padding_free=true"],
        "packed": ["sft.packing=true", "sft.max_length=512"],
    }
    shapes = {}
    for name, overrides in ways.items():
        recipe = fast_recipe(tmp_path, "sft.per_device_train_batch_size=6", "sft.seed=0", *overrides)
        trainer = build_trainer(
            recipe, str(model_dir), datasets.Dataset.from_list(rows), tok, tmp_path / name
        )
        batch, loss, grads = _loss_and_grads(trainer)
        shapes[name] = tuple(batch["input_ids"].shape)
        assert loss == pytest.approx(expected.item(), rel=1e-5), name
        for n, g in expected_grads.items():
            torch.testing.assert_close(grads[n], g.float(), rtol=1e-4, atol=1e-6, msg=f"{name}: {n}")
    n_tokens = sum(len(r["input_ids"]) for r in rows)
    assert shapes["padded"] == (6, 63)  # padded to the longest
    assert shapes["padding_free"] == (1, n_tokens) and shapes["packed"] == (1, n_tokens)  # no padding


@pytest.mark.slow
def test_the_context_extension_reaches_every_checkpoint_and_the_merged_model(tmp_path):
    from transformers import AutoModelForCausalLM

    from ssp.train.fusion import merge_checkpoints

    theta, limit = 20000.0, 1024
    recipe = fast_recipe(
        tmp_path,
        f"model.rope_theta={theta}",
        f"model.max_position_embeddings={limit}",
        "sft.max_length=600",  # beyond the tiny model's own 512 positions
        "sft.eval_base=false",
    )
    run_stage("data", recipe)
    execute_here("sft", recipe)
    ckpts = complete_checkpoints(recipe.run_dir / "sft")
    assert len(ckpts) == 2
    for ckpt in ckpts:
        cfg = json.loads((ckpt / "config.json").read_text())
        assert cfg["max_position_embeddings"] == limit and cfg["rope_parameters"]["rope_theta"] == theta
    merged = merge_checkpoints([(ckpts[0], 0.5), (ckpts[1], 0.5)], tmp_path / "merged")
    assert json.loads((merged / "config.json").read_text())["rope_parameters"]["rope_theta"] == theta
    # the rotary frequencies the loaded model uses, against 1 / theta^(2i/d) computed here
    model = AutoModelForCausalLM.from_pretrained(merged)
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    expected = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    torch.testing.assert_close(model.model.rotary_emb.inv_freq.double(), expected, rtol=1e-6, atol=0)
    # the data stage's model is untouched (512 positions, base 10,000)
    data_model = Manifest(recipe.run_dir).stage("data")["outputs"]["model"]
    assert json.loads((Path(data_model) / "config.json").read_text())["max_position_embeddings"] == 512


@pytest.mark.slow
def test_max_length_beyond_the_position_limit_is_refused_before_training(tmp_path):
    recipe = fast_recipe(tmp_path, "sft.max_length=600")
    run_stage("data", recipe)
    with pytest.raises(RecipeError, match=r"sft.max_length=600 is beyond the position limit .* \(512\)"):
        execute_here("sft", recipe)
    assert not (recipe.run_dir / "sft" / "checkpoints").exists()
    with pytest.raises(FieldError, match="rope_scaling.*needs a rope_type"):
        ModelConfig(rope_scaling={"factor": 4.0})


def _lora_adapter_tensors(folder):
    return load_file(str(folder / "adapter_model.safetensors"))


@pytest.mark.slow
def test_merging_lora_specialists_averages_their_full_models(tmp_path):
    """Two adapters with random (non-zero) factors on one base: the merge is
    W + sum_i w_i (alpha/r) B_i A_i on every adapted layer, computed here from the adapter files."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from benchmarks.sft_throughput import write_random_model
    from ssp.train.fusion import merge_checkpoints

    base = write_random_model("tiny", tmp_path / "base", 512)
    r, alpha = 4, 8
    adapters = []
    for seed in (1, 2):
        model = AutoModelForCausalLM.from_pretrained(base)
        peft_model = get_peft_model(
            model, LoraConfig(r=r, lora_alpha=alpha, target_modules=["q_proj", "down_proj"])
        )
        torch.manual_seed(seed)
        with torch.no_grad():
            for n, p in peft_model.named_parameters():
                if "lora_" in n:
                    p.copy_(torch.randn_like(p) * 0.1)
        out = tmp_path / f"adapter-{seed}"
        peft_model.save_pretrained(out)
        (out / "tokenizer.json").write_bytes((base / "tokenizer.json").read_bytes())
        (out / "tokenizer_config.json").write_bytes((base / "tokenizer_config.json").read_bytes())
        adapters.append(out)
    merged = merge_checkpoints([(adapters[0], 0.25), (adapters[1], 0.75)], tmp_path / "merged")
    got = load_file(str(merged / "model.safetensors"))
    w0 = load_file(str(base / "model.safetensors"))
    factors = [_lora_adapter_tensors(a) for a in adapters]
    checked = 0
    for name, w in w0.items():
        expected = w.clone().double()
        stem = name.removesuffix(".weight")
        for weight, f in zip((0.25, 0.75), factors, strict=True):
            a = f.get(f"base_model.model.{stem}.lora_A.weight")
            if a is not None:
                b = f[f"base_model.model.{stem}.lora_B.weight"]
                expected += weight * (alpha / r) * (b.double() @ a.double())
        if not torch.equal(expected, w.double()):
            checked += 1
        torch.testing.assert_close(got[name].double(), expected, rtol=1e-5, atol=1e-6, msg=name)
    assert checked == 2 * 4, "q_proj and down_proj of each of the 4 layers are adapted"
    info = json.loads((merged / "merge_info.json").read_text())
    assert info["sources"] == [str(a) for a in adapters]


@pytest.mark.slow
def test_lora_sft_learns_resumes_after_a_kill_and_feeds_probe_merge_and_rl(tmp_path):
    """`sft.lora.enabled=true`: checkpoints are adapters; killed mid-training the stage resumes
    from its last one; probe and merge take the adapters (merged into their base); RL with LoRA ends
    in a full model."""
    lora = ["sft.lora.enabled=true", "sft.lora.r=8", "sft.lora.alpha=16", "sft.learning_rate=3e-3"]
    overrides = [f"output_root={tmp_path}", *FAST, *lora, "sft.max_steps=40", "sft.save_every=10"]
    proc, marker, sft_dir = _sft_job_until(tmp_path, overrides, "checkpoint-10")
    _kill_job(marker)
    proc.wait()
    time.sleep(0.5)
    out = subprocess.run(ssp_cmd("stage", "sft", str(TINY), *overrides), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    entry = Manifest(tmp_path / "tiny").stage("sft")
    m = entry["metrics"]
    assert entry["attempts"] == 2 and m["resumed_from"] is not None and m["steps"] == 40
    losses = [h["loss"] for h in json.loads((sft_dir / "log_history.json").read_text()) if "loss" in h]
    assert len(losses) == 40
    # adapters on a random model learn slowly: from ln(320) = 5.77 nats to ~4.9 in 40 steps
    assert sum(losses[-5:]) / 5 < 0.9 * sum(losses[:3]) / 3, losses
    ckpts = complete_checkpoints(sft_dir)
    for ckpt in ckpts:
        names = {p.name for p in ckpt.iterdir()}
        assert {
            "adapter_config.json",
            "adapter_model.safetensors",
        } <= names and "model.safetensors" not in names
    # the adapters moved: the last one differs from the first (peft starts B at zero)
    first, last = (_lora_adapter_tensors(c) for c in (ckpts[0], ckpts[-1]))
    assert any(not torch.equal(first[k], last[k]) for k in first)

    recipe = fast_recipe(
        tmp_path, *lora, "sft.max_steps=40", "sft.save_every=10", "rl.lora.enabled=true", "rl.lora.r=4"
    )
    for stage in ("probe", "merge", "rl"):
        execute_here(stage, recipe)
    probed = Manifest(recipe.run_dir).stage("probe")["metrics"]["checkpoints_probed"]
    assert probed == len(ckpts)
    for ckpt in ckpts:  # sampled as full models: each adapter merged once into <ckpt>/merged
        assert (ckpt / "merged" / "model.safetensors").is_file()
    merged = recipe.run_dir / "merge" / "model"
    assert (merged / "model.safetensors").is_file()
    final = Path(Manifest(recipe.run_dir).stage("rl")["outputs"]["model"])
    assert (final / "model.safetensors").is_file() and not (final / "adapter_config.json").exists()
    rl_ckpt = latest_checkpoint(final.parent)
    assert (rl_ckpt / "adapter_config.json").is_file()
    assert json.loads((rl_ckpt / "adapter_config.json").read_text())["base_model_name_or_path"] == str(merged)


@pytest.mark.slow
def test_the_throughput_benchmark_prints_every_column(tmp_path, capsys):
    from benchmarks.sft_throughput import main

    results = main(
        [
            "--steps", "3", "--warmup", "1", "--lengths", "40:0.7,160:0.3",
            "--settings", "recipe,padding_free,packing",
            "--set", "sft.per_device_train_batch_size=4", "--set", "sft.gradient_accumulation_steps=2",
            "--json", str(tmp_path / "r.json"),
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "| setting | tokens/s | padding | MFU | peak memory (GiB) | x plain | timed steps |" in out
    by = {r.setting: r for r in results}
    assert set(by) == {"recipe", "padding_free", "packing", "plain loop"}
    for r in results:
        assert r.tokens_per_second > 0 and r.steps == 2 and r.peak_memory_gib > 0 and 0 < r.mfu < 1
        assert f"| {r.setting} |" in out
    # mixed lengths: padded batches waste positions, padding-free and packed ones none
    assert by["recipe"].padding > 0.2 and by["padding_free"].padding == 0 and by["packing"].padding < 0.05
    assert len(json.loads((tmp_path / "r.json").read_text())) == 4
