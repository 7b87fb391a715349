"""Tokens/s of the vLLM backend against the transformers backend: same model, prompts and sampling.

    python benchmarks/generation.py runs/tiny/sft/checkpoints/checkpoint-856 runs/tiny/data/eval.jsonl \
        --reload-from runs/tiny/sft/checkpoints/checkpoint-700 [--prompts 64 --n 8 --max-new-tokens 32 --rounds 3]

Both backends sample ``prompts x n`` sequences (temperature 1.0, top_p 0.95) of at most
``max-new-tokens`` tokens; tokens/s counts the tokens actually generated. Rounds alternate the
order (hf then vllm, vllm then hf, ...) and the ratio is of the medians. Engine start-up and
the weight swap (``load`` of another checkpoint into the running engine) are timed apart.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed_generate(gen, prompts, params) -> float:
    start = time.perf_counter()
    outs = gen.generate(prompts, params)
    seconds = time.perf_counter() - start
    return sum(c.num_tokens for o in outs for c in o) / seconds


def main() -> None:
    from ssp.core.corpus import chat_prompt
    from ssp.sampling.generation import GenerationConfig, SamplingParams, make_backend

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("prompts", help="JSONL with a 'problem' column")
    ap.add_argument("--reload-from", help="another checkpoint of the same architecture (weight-swap time)")
    ap.add_argument("--prompts", dest="n_prompts", type=int, default=64)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=512, help="transformers: sequences per generate call")
    args = ap.parse_args()

    rows = [json.loads(line) for line in Path(args.prompts).read_text().splitlines() if line.strip()]
    prompts = [chat_prompt(r["problem"], "") for r in rows[: args.n_prompts]]
    params = SamplingParams(n=args.n, temperature=1.0, top_p=0.95, max_new_tokens=args.max_new_tokens, seed=0)
    hf = make_backend(args.model, GenerationConfig(backend="hf"), batch_size=args.batch_size)
    start = time.perf_counter()
    vllm = make_backend(args.model, GenerationConfig(backend="vllm", max_model_len=512))
    startup = time.perf_counter() - start
    reload_s = None
    if args.reload_from:
        start = time.perf_counter()
        vllm.load(args.reload_from)
        reload_s = time.perf_counter() - start
        vllm.load(args.model)
    timed_generate(vllm, prompts[:4], params)  # warm-up of both paths
    timed_generate(hf, prompts[:4], params)
    speeds: dict[str, list[float]] = {"hf": [], "vllm": []}
    for r in range(args.rounds):
        order = [("hf", hf), ("vllm", vllm)][:: 1 if r % 2 == 0 else -1]
        for name, gen in order:
            speeds[name].append(timed_generate(gen, prompts, params))
    vllm.close()
    hf.close()
    med = {k: statistics.median(v) for k, v in speeds.items()}
    print(f"{len(prompts)} prompts x n={args.n}, <= {args.max_new_tokens} new tokens, {args.rounds} rounds")
    for k, v in speeds.items():
        print(f"  {k:5s} tokens/s: median {med[k]:8.0f}  (rounds: {', '.join(f'{x:.0f}' for x in v)})")
    print(f"  vllm / hf tokens/s ratio: {med['vllm'] / med['hf']:.2f}")
    print(f"  vllm engine start-up: {startup:.1f} s")
    if reload_s is not None:
        print(f"  vllm weight swap (load of another checkpoint): {reload_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
