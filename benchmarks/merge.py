"""Streaming merge against a naive load-all-then-average, at the Qwen2.5-Math-1.5B shape.

    python benchmarks/merge.py [--workdir /tmp/ssp-merge-bench] [--models 3]

Builds ``--models`` checkpoints with random bf16 weights from Qwen2.5-Math-1.5B's published
config (28 layers, hidden 1536, 12 heads, 2 KV heads, intermediate 8960, vocab 151936, tied
embeddings), then runs each merge in its own subprocess and reports wall time and peak RSS
(``ru_maxrss`` of that subprocess) side by side. Needs about 4 x 3.1 GB of disk and, for the
naive merge, about 3 x 3.1 GB of RAM plus the float32 accumulator.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

QWEN25_MATH_15B = dict(
    vocab_size=151936,
    hidden_size=1536,
    intermediate_size=8960,
    num_hidden_layers=28,
    num_attention_heads=12,
    num_key_value_heads=2,
    max_position_embeddings=4096,
    tie_word_embeddings=True,
    rope_theta=10000.0,
    torch_dtype="bfloat16",
)


def build(out: Path, seed: int) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(**QWEN25_MATH_15B)
    with torch.device("meta"):
        shapes = {
            n: p.shape for n, p in Qwen2ForCausalLM(config).state_dict().items() if n != "lm_head.weight"
        }
    gen = torch.Generator().manual_seed(seed)
    tensors = {n: (torch.randn(s, generator=gen) * 0.02).to(torch.bfloat16) for n, s in shapes.items()}
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(out)


def naive(sources: list[Path], out: Path) -> None:
    """Load every model fully, average, save: what most merge scripts do."""
    import torch
    from safetensors.torch import load_file, save_file

    states = [load_file(str(s / "model.safetensors")) for s in sources]
    w = 1.0 / len(states)
    merged = {k: sum(st[k].to(torch.float32) * w for st in states).to(torch.bfloat16) for k in states[0]}
    out.mkdir(parents=True, exist_ok=True)
    save_file(merged, str(out / "model.safetensors"), metadata={"format": "pt"})


def streaming(sources: list[Path], out: Path) -> None:
    from ssp.train.fusion import merge_checkpoints

    merge_checkpoints([(s, 1.0 / len(sources)) for s in sources], out, overwrite=True)


def _child(kind: str, sources: list[str], out: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    start = time.perf_counter()
    {"naive": naive, "streaming": streaming}[kind]([Path(s) for s in sources], Path(out))
    wall = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"kind": kind, "wall_s": wall, "peak_rss_gb": peak_kb / 1024**2}))


def measure(kind: str, sources: list[Path], out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--out", str(out), *map(str, sources)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--workdir", default="/tmp/ssp-merge-bench")
    p.add_argument("--models", type=int, default=3)
    p.add_argument("--child")
    p.add_argument("--out")
    p.add_argument("sources", nargs="*")
    args = p.parse_args()
    if args.child:
        _child(args.child, args.sources, args.out)
        return
    work = Path(args.workdir)
    sources = [work / f"m{i}" for i in range(args.models)]
    for i, s in enumerate(sources):
        if not (s / "model.safetensors").is_file():
            t = time.perf_counter()
            build(s, seed=i)
            print(
                f"built {s} ({(s / 'model.safetensors').stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t:.0f} s"
            )
    results = [
        measure("streaming", sources, work / "out-stream"),
        measure("naive", sources, work / "out-naive"),
    ]
    for r in results:
        print(f"{r['kind']:9s}  wall {r['wall_s']:6.1f} s   peak RSS {r['peak_rss_gb']:5.2f} GB")
    s, n = results
    print(
        f"streaming / naive: wall {s['wall_s'] / n['wall_s']:.2f}x, peak RSS {s['peak_rss_gb'] / n['peak_rss_gb']:.3f}x"
    )
    same = _identical(work / "out-stream" / "model.safetensors", work / "out-naive" / "model.safetensors")
    print(f"outputs identical: {same}")
    print(f"cores: {os.cpu_count()}")
    shutil.rmtree(work / "out-naive", ignore_errors=True)


def _identical(a: Path, b: Path) -> bool:
    import torch
    from safetensors import safe_open

    with safe_open(a, framework="pt") as fa, safe_open(b, framework="pt") as fb:
        return set(fa.keys()) == set(fb.keys()) and all(
            torch.equal(fa.get_tensor(k), fb.get_tensor(k)) for k in fa.keys()
        )


if __name__ == "__main__":
    main()
