"""A tiny randomly initialised Qwen2-architecture model for the tiny task.

Same architecture as Qwen2.5-Math-1.5B (grouped-query attention, RMSNorm, SwiGLU, RoPE, tied
embeddings), about a million parameters. head_dim = hidden_size / num_attention_heads = 64 by
default, the smallest head size vLLM's CPU attention kernels accept.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import GenerationConfig, PreTrainedTokenizerBase, Qwen2Config, Qwen2ForCausalLM

from data_pipeline.config import TinyModelConfig


def build_tiny_model(cfg: TinyModelConfig, tokenizer: PreTrainedTokenizerBase, seed: int) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        rope_theta=10000.0,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )
    return Qwen2ForCausalLM(config)


def save_tiny_model(model: Qwen2ForCausalLM, tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> None:
    """A complete, loadable model folder: config, safetensors weights, tokenizer, generation config."""
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id],
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        do_sample=False,
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
