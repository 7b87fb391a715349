"""A minimal GRPO/MGPO loop in plain PyTorch: the reference the `rl` stage is compared against.

    python benchmarks/grpo_reference.py runs/tiny/merge/model --train runs/tiny/data/rl.jsonl \\
        --heldout runs/tiny/data/eval.jsonl --steps 40 --prompts 16 --G 8 --lr 2e-4 --eval-every 10

Nothing of ssp, TRL or math-verify is used: its own sampler (a KV-cached loop with temperature and
top-p), its own reward (the last ``\\boxed{}`` compared as a string with the answer), its own
advantages, loss (the DAPO token-level clipped surrogate, one update per rollout batch, so the
ratio is 1 and the clip inactive) and optimizer (AdamW, no weight decay, gradient norm clipped at
1, linear decay to 0 as TRL's default). Only the model class and tokenizer come from transformers.
If the stage and this loop disagree at matched settings, one of them is wrong.

Options the stage has as recipe keys: ``--lam`` (MGPO weight; 0 = GRPO), ``--dynamic`` (dynamic
sampling: drop groups whose rewards are all equal and draw fresh prompts until the batch holds
``--prompts`` mixed groups or ``--max-refills`` rounds were drawn), ``--no-std`` (advantages not
divided by the group's std). It prints one line per step and the held-out Pass@1 (``--eval-n``
samples per problem, temperature 1.0, top-p 0.95, the report's protocol) every ``--eval-every``
steps, and writes the curve as JSON with ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

BOX = re.compile(r"\\boxed\{([^{}]*)\}")


def reward(text: str, answer: str) -> float:
    found = BOX.findall(text)
    return float(bool(found) and found[-1].replace(" ", "") == answer.replace(" ", ""))


def load_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@torch.no_grad()
def sample(model, tok, prompts: list[str], n: int, max_new: int, temperature: float, top_p: float, gen):
    """n completions per prompt: (token ids per completion, prompt ids per completion)."""
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    enc = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts for _ in range(n)]
    width = max(map(len, enc))
    pad = tok.pad_token_id
    ids = torch.tensor([[pad] * (width - len(e)) + e for e in enc])
    mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in enc])
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
    past, logits = out.past_key_values, out.logits[:, -1]
    done = torch.zeros(len(enc), dtype=torch.bool)
    completions = [[] for _ in enc]
    last_pos = pos[:, -1]
    for _ in range(max_new):
        probs = F.softmax(logits / temperature, dim=-1)
        if top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            keep = sorted_p.cumsum(-1) - sorted_p < top_p
            sorted_p = sorted_p * keep
            probs = torch.zeros_like(probs).scatter(1, order, sorted_p)
        nxt = torch.multinomial(probs / probs.sum(-1, keepdim=True), 1, generator=gen).squeeze(1)
        for i in (~done).nonzero().flatten().tolist():
            completions[i].append(int(nxt[i]))
        done |= nxt == eos
        if done.all():
            break
        mask = torch.cat([mask, torch.ones(len(enc), 1, dtype=mask.dtype)], 1)
        last_pos = last_pos + 1
        out = model(
            input_ids=nxt[:, None],
            attention_mask=mask,
            position_ids=last_pos[:, None],
            past_key_values=past,
            use_cache=True,
        )
        past, logits = out.past_key_values, out.logits[:, -1]
    return completions, enc


def heldout(model, tok, rows, prompts, n, max_new, seed, temperature=1.0) -> float:
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    correct = 0
    for i in range(0, len(rows), 64):
        comps, _ = sample(model, tok, prompts[i : i + 64], n, max_new, temperature, 0.95, gen)
        texts = tok.batch_decode(comps, skip_special_tokens=True)
        correct += sum(reward(t, rows[i + j // n]["answer"]) for j, t in enumerate(texts))
    return correct / (len(rows) * n)


def mgpo_weight(p: float, lam: float, p0: float = 0.5) -> float:
    kl = (p * math.log(p / p0) if p > 0 else 0.0) + ((1 - p) * math.log((1 - p) / (1 - p0)) if p < 1 else 0.0)
    return math.exp(-lam * kl)


def main() -> None:
    a = argparse.ArgumentParser()
    a.add_argument("model", type=Path)
    a.add_argument("--train", type=Path, required=True)
    a.add_argument("--heldout", type=Path, required=True)
    a.add_argument("--steps", type=int, default=40)
    a.add_argument("--prompts", type=int, default=16, help="groups per step")
    a.add_argument("--G", type=int, default=8)
    a.add_argument("--lr", type=float, default=2e-4)
    a.add_argument("--lam", type=float, default=0.0)
    a.add_argument("--optim", choices=["adamw", "sgd"], default="adamw")
    a.add_argument("--adam-eps", type=float, default=1e-8)
    a.add_argument("--warmup", type=int, default=0, help="linear warmup steps, then linear decay to 0")
    a.add_argument("--no-std", action="store_true")
    a.add_argument("--pos-only", action="store_true", help="diagnostic: keep only positive advantages")
    a.add_argument("--dynamic", action="store_true")
    a.add_argument("--max-refills", type=int, default=4)
    a.add_argument("--max-new", type=int, default=96)
    a.add_argument("--temperature", type=float, default=1.0)
    a.add_argument("--rollout-top-p", type=float, default=1.0)
    a.add_argument("--eval-temperature", type=float, default=1.0)
    a.add_argument("--eval-every", type=int, default=10)
    a.add_argument("--eval-n", type=int, default=8)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--train-only", help="regex: train only the parameters whose names match (others frozen)")
    a.add_argument("--out", type=Path)
    a.add_argument("--save", type=Path, help="write the final model here")
    args = a.parse_args()

    torch.manual_seed(args.seed)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    chat = lambda r: tok.apply_chat_template(  # noqa: E731
        [{"role": "user", "content": r["problem"]}], tokenize=False, add_generation_prompt=True
    )
    train, held = load_rows(args.train), load_rows(args.heldout)
    held_prompts = [chat(r) for r in held]
    params = [p for n, p in model.named_parameters() if not args.train_only or re.search(args.train_only, n)]
    for p in model.parameters():
        p.requires_grad_(any(p is q for q in params))
    if args.optim == "sgd":
        opt = torch.optim.SGD(params, lr=args.lr)
    else:
        opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0, eps=args.adam_eps)
    warm = args.warmup
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, 1.0) if s < warm else 1 - (s - warm) / max(1, args.steps - warm)
    )
    order = list(range(len(train)))
    random.Random(args.seed).shuffle(order)
    cursor, gen = 0, torch.Generator().manual_seed(args.seed)
    curve = [
        {
            "step": 0,
            "heldout_pass1": heldout(
                model, tok, held, held_prompts, args.eval_n, args.max_new, 1, args.eval_temperature
            ),
        }
    ]
    print(json.dumps(curve[-1]), flush=True)
    pad = tok.pad_token_id
    for step in range(1, args.steps + 1):
        t0 = time.perf_counter()
        model.eval()
        kept, drawn, rounds, rewards_all = [], 0, 0, []
        while len(kept) < args.prompts and rounds <= (args.max_refills if args.dynamic else 0):
            rounds += 1
            batch = []
            for _ in range(args.prompts):
                batch.append(train[order[cursor % len(order)]])
                cursor += 1
            comps, enc = sample(
                model,
                tok,
                [chat(r) for r in batch],
                args.G,
                args.max_new,
                args.temperature,
                args.rollout_top_p,
                gen,
            )
            texts = tok.batch_decode(comps, skip_special_tokens=True)
            for g, r in enumerate(batch):
                rs = [reward(texts[g * args.G + i], r["answer"]) for i in range(args.G)]
                rewards_all += rs
                drawn += 1
                if args.dynamic and len(set(rs)) == 1:
                    continue
                if len(kept) < args.prompts:
                    kept.append((rs, [(enc[g * args.G + i], comps[g * args.G + i]) for i in range(args.G)]))
        # advantages, MGPO weight
        seqs, advs = [], []
        for rs, items in kept:
            m = sum(rs) / len(rs)
            sd = (sum((x - m) ** 2 for x in rs) / (len(rs) - 1)) ** 0.5  # TRL's nanstd: unbiased
            w = mgpo_weight(m, args.lam)
            for x, (p, c) in zip(rs, items, strict=True):
                adv = (x - m) / (1.0 if args.no_std else sd + 1e-4) * w
                adv = max(adv, 0.0) if args.pos_only else adv
                seqs.append((p, c))
                advs.append(adv)
        gen_s = time.perf_counter() - t0
        model.train()
        width = max(len(p) + len(c) for p, c in seqs)
        ids = torch.full((len(seqs), width), pad)
        att = torch.zeros_like(ids)
        lossmask = torch.zeros(len(seqs), width)
        for i, (p, c) in enumerate(seqs):
            full = p + c  # prompt ids unpadded, completion ids up to and including the end of turn
            ids[i, : len(full)] = torch.tensor(full)
            att[i, : len(full)] = 1
            lossmask[i, len(p) : len(full)] = 1
        pos = (att.cumsum(1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=att, position_ids=pos).logits[:, :-1] / args.temperature
        logp = torch.gather(F.log_softmax(logits, -1), 2, ids[:, 1:, None]).squeeze(2)
        m = lossmask[:, 1:]
        adv = torch.tensor(advs)[:, None]
        loss = -(torch.exp(logp - logp.detach()) * adv * m).sum() / m.sum().clamp(min=1)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        mixed = sum(len(set(rs)) > 1 for rs, _ in kept)
        line = {
            "step": step,
            "reward": round(sum(rewards_all) / len(rewards_all), 4),
            "groups_drawn": drawn,
            "groups_mixed_trained": mixed,
            "seconds": round(time.perf_counter() - t0, 2),
            "gen_seconds": round(gen_s, 2),
        }
        if step % args.eval_every == 0 or step == args.steps:
            line["heldout_pass1"] = heldout(
                model, tok, held, held_prompts, args.eval_n, args.max_new, 1, args.eval_temperature
            )
        curve.append(line)
        print(json.dumps(line), flush=True)
    if args.save:
        model.save_pretrained(args.save)
        tok.save_pretrained(args.save)
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "curve": curve}))


if __name__ == "__main__":
    main()
