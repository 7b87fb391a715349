"""A tiny randomly initialised Qwen2-architecture model for the tiny task.

Same architecture as Qwen2.5-Math-1.5B (grouped-query attention, RMSNorm, SwiGLU, RoPE, tied
embeddings), about a million parameters. head_dim = hidden_size / num_attention_heads = 64 by
default, the smallest head size vLLM's CPU attention kernels accept.

transformers is imported inside the functions: the recipe imports ``TinyModelConfig`` from here,
and every ``ssp`` command loads a recipe (importing the Qwen2 classes took ~5 s of start-up).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ssp.core.errors import check, check_positive

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, Qwen2ForCausalLM


@dataclass
class TinyModelConfig:
    """Shape of the randomly initialised Qwen2 model built for the tiny task."""

    hidden_size: int = 128
    """Width. Keep hidden_size / num_attention_heads = 64: vLLM's CPU attention kernels reject head_dim 16."""
    num_hidden_layers: int = 4
    """Decoder layers."""
    num_attention_heads: int = 2
    """Query heads."""
    num_key_value_heads: int = 1
    """KV heads (grouped-query attention, as in Qwen2.5)."""
    intermediate_size: int = 512
    """MLP width."""
    max_position_embeddings: int = 512
    """Longest sequence the model accepts (prompt plus completion)."""
    vocab_size: int = 512
    """Target size of the byte-level BPE vocabulary trained on the corpus (special tokens included)."""

    def __post_init__(self):
        check_positive(
            self,
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "intermediate_size",
            "max_position_embeddings",
        )
        check(
            self,
            "num_attention_heads",
            self.hidden_size % self.num_attention_heads == 0,
            "must divide hidden_size",
        )
        check(
            self,
            "num_key_value_heads",
            self.num_attention_heads % self.num_key_value_heads == 0,
            "must divide num_attention_heads",
        )
        check(
            self,
            "vocab_size",
            self.vocab_size >= 300,
            f"must be >= 300 (256 byte symbols plus specials and merges), got {self.vocab_size}",
        )


def build_tiny_model(cfg: TinyModelConfig, tokenizer: PreTrainedTokenizerBase, seed: int) -> Qwen2ForCausalLM:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

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
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id],
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        do_sample=False,
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
