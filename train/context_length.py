"""Context extension: the RoPE base, position limit and RoPE scaling written into the starting model.

    model: {rope_theta: 1000000, max_position_embeddings: 40960}     # recipes/vibethinker_1p5b.yaml

The report trains and samples traces far longer than Qwen2.5-Math-1.5B's 4,096 positions without
saying how it extends the context; the recipe says it with these keys. The SFT stage writes the
starting model once more, with the new values in its config (``<sft>/start_model``), and trains
from that folder; every checkpoint, and so the merged model, the RL phases and the eval engines
(vLLM takes its default context from ``max_position_embeddings``), carries them from there. A LoRA
adapter names that folder as its base, so merging it back keeps the extension too.

transformers 5 keeps the RoPE settings in ``config.rope_parameters`` ({rope_type, rope_theta, and
the scaling keys}); the rotary embedding's inverse frequencies are computed from it when the model
is built, which is why the change goes into the config before loading, not onto a loaded model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ssp.core.model_folder import check_model_folder, save_model_folder

log = logging.getLogger("ssp")

FOLDER = "start_model"


def extend_config(
    config,
    rope_theta: float | None = None,
    max_position_embeddings: int | None = None,
    rope_scaling: dict[str, Any] | None = None,
) -> dict:
    """Write a context extension (the recipe's model keys) into a transformers config; returns
    what was set."""
    rope = dict(getattr(config, "rope_parameters", None) or {})
    if rope_scaling:
        rope = {"rope_theta": rope.get("rope_theta", 10000.0), **dict(rope_scaling)}
    if rope_theta:
        rope["rope_theta"] = float(rope_theta)
    rope.setdefault("rope_type", "default")
    config.rope_parameters = rope
    if max_position_embeddings:
        config.max_position_embeddings = int(max_position_embeddings)
    return {"rope_parameters": rope, "max_position_embeddings": config.max_position_embeddings}


def extended_start_model(start_model: str, stage_dir: Path, dtype: str, **extension: Any) -> str:
    """``start_model`` itself without a context extension (``extension``: the keyword arguments of
    ``extend_config``, ``ModelConfig.context_extension()``); otherwise ``<stage_dir>/start_model``,
    the same weights and tokenizer with the extended config (written once, atomically; rank 0
    only: other ranks wait at the caller's barrier)."""
    if not any(extension.values()):
        return start_model
    out = Path(stage_dir) / FOLDER
    if (out / "config.json").is_file():
        check_model_folder(out)
        return str(out)
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(start_model)
    before = {"rope_parameters": dict(config.rope_parameters or {}), "max": config.max_position_embeddings}
    after = extend_config(config, **extension)
    log.info("sft: context extension %s -> %s (written to %s)", before, after, out)
    weights = AutoModelForCausalLM.from_pretrained(start_model, config=config, dtype=dtype)
    return str(save_model_folder(weights, start_model, out))
