"""A real model folder whose answers are known in advance: the oracle of the stage tests.

    build_scripted_model(tmp_path / "m", p=0.75)   # "\\boxed{7}" with probability 0.75, else "\\boxed{8}"

A stage test that only checks ranges passes with a reward that always returns 0 or always
fails. To compare a stage's numbers with values computed independently, the test needs a model
whose correct rate is known before sampling: a trained tiny model is right too rarely in test
time. This builds one by hand. It is a genuine Qwen2 model (safetensors, config, tokenizer,
chat template) that transformers, TRL and vLLM load and sample like any other; only its weights
are chosen, not trained:

- attention and MLP output projections are zero, so each position's hidden state is its token's
  embedding: the next-token distribution depends only on the current token (a bigram model);
- every prompt token's embedding points one way ("answer next"), the two answer tokens' another
  ("stop next"); the LM head turns the first into log-probabilities log p and log(1 - p) for
  ``\\boxed{A}`` and ``\\boxed{B}`` (every other token e^-40 less likely), the second into
  end-of-turn.

So every completion is exactly ``\\boxed{A}`` or ``\\boxed{B}`` and stops, whatever the prompt,
with P(A) = p at temperature 1 (top_p >= max(p, 1 - p) keeps both). ``order`` permutes the
vocabulary: the same behaviour under a different tokenizer (token ids), for tokenizer mix-ups.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
WORDS = ["[UNK]", "user", "assistant", "system"]
OFF = -40.0  # logit of every token the script does not allow


def build_scripted_model(
    out_dir: Path,
    p: float,
    answers: tuple[str, str] = ("7", "8"),
    order: int = 0,
    hidden: int = 128,
    completions: tuple[str, str] | None = None,
) -> Path:
    """``completions``: the two whole completions instead of ``\\boxed{A}`` / ``\\boxed{B}`` (each
    one token of the vocabulary, e.g. two programs for a code reward)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from ssp.data_pipeline.tiny.tokenizer import CHAT_TEMPLATE

    answer_tokens = list(completions) if completions else [f"\\boxed{{{a}}}" for a in answers]
    words = WORDS + answer_tokens
    if order:  # another tokenizer with the same behaviour: the words at other ids
        words = words[order % len(words) :] + words[: order % len(words)]
    vocab = {t: i for i, t in enumerate(SPECIALS + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="[UNK]",
        additional_special_tokens=["<|im_start|>"],
        padding_side="left",
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    config = Qwen2Config(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=hidden // 64,  # head_dim 64: vLLM's CPU kernels accept it
        num_key_value_heads=1,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        eos_token_id=vocab["<|im_end|>"],
        pad_token_id=vocab["<|endoftext|>"],
        bos_token_id=None,
        torch_dtype="float32",
    )
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.fill_(1.0)
        answer_ids = [vocab[t] for t in answer_tokens]
        emb = model.model.embed_tokens.weight
        emb[:, 0] = 1.0  # every token: "answer next" ...
        for i in answer_ids:  # ... but the answers: "stop next"
            emb[i, 0], emb[i, 1] = 0.0, 1.0
        scale = math.sqrt(hidden)  # RMSNorm turns a one-hot embedding into sqrt(hidden) x one-hot
        head = model.lm_head.weight
        head[:, 0] = head[:, 1] = OFF / scale
        head[answer_ids[0], 0] = (math.log(p) if p > 0 else OFF) / scale
        head[answer_ids[1], 0] = (math.log(1 - p) if p < 1 else OFF) / scale
        head[vocab["<|im_end|>"], 1] = 0.0
    model.generation_config = GenerationConfig(
        eos_token_id=[vocab["<|im_end|>"]], pad_token_id=vocab["<|endoftext|>"], bos_token_id=None
    )
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    hf_tok.save_pretrained(out_dir)
    return out_dir


def expected_answer(text: str) -> str | None:
    """The test's own reading of a scripted completion: the answer inside its only box, or None.
    Independent of the reward on purpose (plain string work, no math-verify)."""
    text = text.strip()
    if text.startswith("\\boxed{") and text.endswith("}") and text.count("\\boxed{") == 1:
        return text[len("\\boxed{") : -1]
    return None
