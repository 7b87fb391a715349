"""SFT throughput per setting, through the `sft` stage's own trainer, beside a plain PyTorch loop.

    python benchmarks/sft_throughput.py                                   # tiny shape, CPU
    python benchmarks/sft_throughput.py --shape qwen2.5-math-1.5b --lengths 3700 \\
        --settings recipe,no_deepspeed,padding_free,packing                # one GPU
    python benchmarks/sft_throughput.py --shape qwen2.5-math-1.5b --lengths 16000 \\
        --set sft.per_device_train_batch_size=1 --set sft.gradient_accumulation_steps=2
    python benchmarks/sft_throughput.py --shape qwen2.5-math-1.5b --lengths 1000:0.8,16000:0.2

A model of the named shape with random weights is written to a temporary folder (the tiny task's
shape, or Qwen2.5-Math-1.5B's: hidden 1536, 28 layers, 12 heads, 2 KV heads, vocabulary 151,936),
and a corpus of random token ids whose lengths follow ``--lengths`` (``L`` or ``L:share,...``; each
example within +-10% of its L, the first 10% of it a prompt the loss masks). Each setting is the
recipe's ``sft`` section (recipes/tiny.yaml, or recipes/vibethinker_1p5b.yaml for the 1.5B shape)
with the setting's overrides, trained for ``--steps`` optimizer steps by ``stages.sft.build_trainer``
(the stage's SFTTrainer: same TRL config, collator, DeepSpeed, LoRA and context extension); the
first ``--warmup`` steps are not timed. Then a plain loop in the same process: the same model
folder and micro-batches, padded, the model's own loss (full logits), AdamW (fused on CUDA), no
Trainer.

Columns: tokens/s (real tokens, not padding, of the timed steps over their time), padding (share
of the positions fed to the model that are padding), MFU (FLOPs per token 6N + 12 L d E[t^2]/E[t]
over the GPU's dense bf16 peak, or on a CPU over a matmul peak measured at start), peak memory (CUDA
max allocated; on a CPU the process's resident peak, reset per setting), x plain (tokens/s over the
plain loop's). Settings run one after another in one process: ratios are measured side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.merge import QWEN25_MATH_15B  # noqa: E402
from ssp.data_pipeline.tiny.model import TinyModelConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# The model shapes: the tiny task's (data_pipeline/tiny/model.py's defaults) and Qwen2.5-Math-1.5B's
# (benchmarks/merge.py holds its config.json values).
_SHAPE_KEYS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
)
SHAPES = {
    "tiny": {k: getattr(TinyModelConfig(), k) for k in _SHAPE_KEYS},
    "qwen2.5-math-1.5b": {k: QWEN25_MATH_15B[k] for k in _SHAPE_KEYS},
}
RECIPES = {
    "tiny": ROOT / "recipes" / "tiny.yaml",
    "qwen2.5-math-1.5b": ROOT / "recipes" / "vibethinker_1p5b.yaml",
}
# Each setting: recipe overrides on top of the recipe's own sft section.
SETTINGS = {
    "recipe": [],
    "no_deepspeed": ["sft.deepspeed=null"],
    "padding_free": ["sft.padding_free=true"],
    "packing": ["sft.packing=true"],
    "group_by_length": ["sft.group_by_length=true"],
    "no_checkpointing": ["sft.gradient_checkpointing=false"],
    "checkpointing": ["sft.gradient_checkpointing=true"],
    "compile": ["sft.torch_compile=true"],
    "lora": ["sft.lora.enabled=true"],
}
# Dense bf16 peak per GPU, FLOP/s (vendor data sheets, SXM parts, no sparsity).
GPU_PEAKS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12}


@dataclass
class Result:
    setting: str
    tokens_per_second: float
    padding: float
    mfu: float | None
    peak_memory_gib: float
    steps: int


# --- the model and the corpus ------------------------------------------------------------


def write_random_model(shape: str, out_dir: Path, max_positions: int) -> Path:
    """A model folder of the named shape with random weights and a word-level tokenizer over its
    vocabulary (token i is "t<i>"; t0 pads, t1 ends a turn)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    dims = dict(SHAPES[shape])
    dims["max_position_embeddings"] = max(dims["max_position_embeddings"], max_positions)
    vocab = {f"t{i}": i for i in range(dims["vocab_size"])}
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="t0")), pad_token="t0", eos_token="t1"
    )
    torch.manual_seed(0)
    config = Qwen2Config(**dims, tie_word_embeddings=True, rope_theta=10000.0, pad_token_id=0, eos_token_id=1)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2ForCausalLM(config)
    model.to(torch.bfloat16 if torch.cuda.is_available() else torch.float32).save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    del model
    return out_dir


def parse_lengths(spec: str) -> list[tuple[int, float]]:
    """``3700`` or ``1000:0.8,16000:0.2`` -> [(length, share)], shares summing to 1."""
    parts = []
    for item in spec.split(","):
        length, _, share = item.partition(":")
        parts.append((int(length), float(share) if share else 1.0))
    total = sum(s for _, s in parts)
    return [(n, s / total) for n, s in parts]


def random_corpus(lengths: list[tuple[int, float]], n: int, vocab: int, seed: int = 0) -> list[dict]:
    """``n`` pre-tokenized examples: {input_ids, completion_mask} (the first 10% is the prompt)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        target = rng.choices([x for x, _ in lengths], weights=[s for _, s in lengths])[0]
        t = max(8, int(target * rng.uniform(0.9, 1.0)))
        prompt = max(1, t // 10)
        rows.append(
            {
                "input_ids": [rng.randrange(2, vocab) for _ in range(t)],
                "completion_mask": [0] * prompt + [1] * (t - prompt),
            }
        )
    return rows


def flops_per_token(model_dir: Path, rows: list[dict]) -> float:
    """6N + 12 L d E[t^2]/E[t]: weights (forward and backward) plus attention scores over each
    example's own length."""
    cfg = json.loads((model_dir / "config.json").read_text())
    d, layers, vocab = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    inter, heads, kv = cfg["intermediate_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = d // heads
    per_layer = d * d * 2 + 2 * d * kv * head_dim + 3 * d * inter  # q, o; k, v; gate, up, down
    n_params = layers * per_layer + vocab * d  # the (tied) output head counts once
    lens = [len(r["input_ids"]) for r in rows]
    return 6 * n_params + 12 * layers * d * sum(t * t for t in lens) / sum(lens)


# --- where the time and memory are read -----------------------------------------------------


def device_peak_flops() -> tuple[float, str]:
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        for key, peak in GPU_PEAKS.items():
            if key in name:
                return peak, f"{name}, dense bf16 peak {peak / 1e12:.0f} TFLOP/s"
        return float("nan"), f"{name} (no peak on file: MFU not computed)"
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    start, reps = time.perf_counter(), 20
    for _ in range(reps):
        a @ b
    peak = reps * 2 * 1024**3 / (time.perf_counter() - start)
    return peak, f"CPU, {torch.get_num_threads()} threads, fp32 matmul measured at {peak / 1e9:.1f} GFLOP/s"


def _reset_peak_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    else:
        with contextlib.suppress(OSError):  # resets VmHWM (Linux)
            Path("/proc/self/clear_refs").write_text("5")


def _peak_memory_gib() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class _Counting:
    """Wraps a collator: counts real tokens and the positions the model is fed."""

    def __init__(self, collate):
        self.collate, self.real, self.positions = collate, 0, 0

    def __call__(self, examples):
        batch = self.collate(examples)
        self.real += sum(len(ex["input_ids"]) for ex in examples)
        self.positions += batch["input_ids"].numel()
        return batch


def _step_timer(trainer, warmup: int):
    """A callback timing each optimizer step after ``warmup``; tokens from TRL's own count."""
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        seconds, tokens, steps = 0.0, 0, 0

        def on_step_begin(self, args, state, control, **kw):
            _sync()
            self._t, self._n = time.perf_counter(), trainer._total_train_tokens

        def on_step_end(self, args, state, control, **kw):
            _sync()
            if state.global_step > warmup:
                self.seconds += time.perf_counter() - self._t
                self.tokens += trainer._total_train_tokens - self._n
                self.steps += 1

    return Timer()


# --- the runs ------------------------------------------------------------------------------


def _single_process_env() -> None:
    """DeepSpeed and accelerate expect a launcher's variables; one process is a world of one."""
    from trl.trainer.utils import ensure_master_addr_port

    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}.items():
        os.environ.setdefault(key, value)
    ensure_master_addr_port()


def run_setting(name, overrides, recipe_file, model_dir, rows, steps, warmup, fpt, peak, work) -> Result:
    import datasets
    from transformers import AutoTokenizer

    from ssp.config.recipe import load_recipe
    from ssp.stages.sft import _dtype, build_trainer
    from ssp.train.context_length import extended_start_model

    recipe = load_recipe(
        recipe_file,
        [*overrides, f"sft.max_steps={steps}", "sft.save_every=1000000", "tracking.report_to=none"],
    )
    if recipe.sft.deepspeed:
        _single_process_env()
        recipe.sft.deepspeed = str(ROOT / recipe.sft.deepspeed)
    extension = recipe.model.context_extension()
    start = extended_start_model(str(model_dir), work / f"ext-{name}", _dtype(recipe), **extension)
    tok = AutoTokenizer.from_pretrained(start)
    _reset_peak_memory()
    trainer = build_trainer(recipe, start, datasets.Dataset.from_list(rows), tok, work / name)
    trainer.data_collator = counting = _Counting(trainer.data_collator)
    trainer.add_callback(timer := _step_timer(trainer, warmup))
    trainer.train()
    mem = _peak_memory_gib()
    del trainer
    _free()
    tps = timer.tokens / timer.seconds
    return Result(name, tps, 1 - counting.real / counting.positions, tps * fpt / peak, mem, timer.steps)


def run_plain(recipe_file, overrides, model_dir, rows, steps, warmup, fpt, peak) -> Result:
    """The same folder and micro-batches without the Trainer: padded batches, model(labels=...)."""
    from transformers import AutoModelForCausalLM

    from ssp.config.recipe import load_recipe
    from ssp.stages.sft import _dtype

    recipe = load_recipe(recipe_file, overrides)
    micro, accum = recipe.sft.per_device_train_batch_size, recipe.sft.gradient_accumulation_steps
    device = "cuda" if torch.cuda.is_available() else "cpu"
    _reset_peak_memory()
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=getattr(torch, _dtype(recipe)))
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device == "cuda")
    order = random.Random(1).sample(range(len(rows)), len(rows))
    seconds, tokens, timed, real, positions = 0.0, 0, 0, 0, 0
    for step in range(steps):
        _sync()
        t0 = time.perf_counter()
        n = 0
        for i in range(accum):
            batch = [rows[order[(step * accum + i) * micro % len(rows) + j]] for j in range(micro)]
            width = max(len(r["input_ids"]) for r in batch)
            ids = torch.zeros(len(batch), width, dtype=torch.long)
            labels = torch.full((len(batch), width), -100)
            mask = torch.zeros(len(batch), width, dtype=torch.long)
            for k, r in enumerate(batch):
                t = len(r["input_ids"])
                ids[k, :t] = torch.tensor(r["input_ids"])
                mask[k, :t] = 1
                labels[k, :t] = torch.where(torch.tensor(r["completion_mask"]) == 1, ids[k, :t], -100)
                n, real = n + t, real + t
            positions += ids.numel()
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device))
            (out.loss / accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync()
        if step >= warmup:
            seconds += time.perf_counter() - t0
            tokens += n
            timed += 1
    mem = _peak_memory_gib()
    del model, opt
    _free()
    tps = tokens / seconds
    return Result("plain loop", tps, 1 - real / positions, tps * fpt / peak, mem, timed)


def _free() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def table(results: list[Result], plain: Result) -> str:
    lines = [
        "| setting | tokens/s | padding | MFU | peak memory (GiB) | x plain | timed steps |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in [*results, plain]:
        mfu = "n/a" if r.mfu is None or r.mfu != r.mfu else f"{r.mfu:.1%}"
        lines.append(
            f"| {r.setting} | {r.tokens_per_second:,.0f} | {r.padding:.1%} | {mfu} | "
            f"{r.peak_memory_gib:.2f} | {r.tokens_per_second / plain.tokens_per_second:.2f} | {r.steps} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Result]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    ap.add_argument("--recipe", default=None, help="default: the shape's recipe")
    ap.add_argument("--lengths", default=None, help="L or L:share,...; default 200 (tiny) / 3700")
    ap.add_argument("--settings", default=None, help=f"comma-separated, of {sorted(SETTINGS)}")
    ap.add_argument("--set", action="append", default=[], help="recipe override for every setting")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--examples", type=int, default=0, help="corpus size; default: enough for every step")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    tiny = args.shape == "tiny"
    recipe_file = Path(args.recipe or RECIPES[args.shape])
    lengths = parse_lengths(args.lengths or ("200" if tiny else "3700"))
    default_settings = "recipe,padding_free,packing,group_by_length" + ("" if tiny else ",no_deepspeed")
    names = (args.settings or default_settings).split(",")
    unknown = [s for s in names if s not in SETTINGS]
    if unknown:
        ap.error(f"unknown settings {unknown}; known: {sorted(SETTINGS)}")
    if not 0 <= args.warmup < args.steps:
        ap.error("--warmup must be >= 0 and below --steps")

    from ssp.config.recipe import load_recipe

    base = load_recipe(recipe_file, args.set)
    per_step = base.sft.per_device_train_batch_size * base.sft.gradient_accumulation_steps
    longest = max(n for n, _ in lengths)
    limits = [f"sft.max_length={longest}"]
    with tempfile.TemporaryDirectory(prefix="sft-throughput-") as tmp:
        work = Path(tmp)
        model_dir = write_random_model(args.shape, work / "model", longest)
        vocab = SHAPES[args.shape]["vocab_size"]
        # 200 steps' worth: transformers' length grouping sorts mega-batches of up to 50 x the batch,
        # and only when the corpus holds 4 of them (a corpus of a few batches is not grouped at all)
        rows = random_corpus(lengths, args.examples or per_step * max(args.steps + 1, 200), vocab)
        peak, where = device_peak_flops()
        fpt = flops_per_token(model_dir, rows)
        print(f"# {args.shape}: {where}; lengths {lengths}; {len(rows)} examples; {per_step} per step")
        results = []
        for name in names:
            print(f"# setting {name} ...", flush=True)
            overrides = [*limits, *args.set, *SETTINGS[name]]
            results.append(
                run_setting(
                    name, overrides, recipe_file, model_dir, rows, args.steps, args.warmup, fpt, peak, work
                )
            )
        print("# plain loop ...", flush=True)
        plain = run_plain(
            recipe_file, [*limits, *args.set], model_dir, rows, args.steps, args.warmup, fpt, peak
        )
    print(table(results, plain))
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in [*results, plain]], indent=2))
    return [*results, plain]


if __name__ == "__main__":
    main()
