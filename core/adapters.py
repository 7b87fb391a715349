"""LoRA adapter checkpoints, and the full model folder each one stands for.

A stage trained with LoRA (``sft.lora``, ``rl.lora``) saves adapter folders: ``adapter_config.json``
(which names the base model) and ``adapter_model.safetensors``, with the tokenizer and trainer
state. What samples or fuses a model needs every weight, so ``full_model_folder`` turns an adapter
folder into the model it stands for, base + (alpha / r) * B A on every adapted layer (peft's
``merge_and_unload``), written once into ``<adapter>/merged`` (atomically: built under a temporary
name, renamed) and reused after. A full model folder is returned as it is.

Fusing LoRA specialists therefore averages their merged weights, sum_i w_i (W + s B_i A_i), which is
the report's parameter average of the specialists; averaging the A and B factors instead would
not be (mean(B) mean(A) != mean(B A)).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ssp.core.errors import DataError
from ssp.core.model_folder import ADAPTER_CONFIG, check_model_folder, save_model_folder

log = logging.getLogger("ssp")

MERGED = "merged"


def is_adapter(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def adapter_base(path: str | Path) -> str:
    """The base model an adapter folder was trained on (its adapter_config.json says)."""
    config = Path(path) / ADAPTER_CONFIG
    try:
        base = json.loads(config.read_text()).get("base_model_name_or_path")
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{config}: unreadable ({type(err).__name__}: {err})") from None
    if not base:
        raise DataError(f"{config}: names no base_model_name_or_path (which model does it adapt?)")
    return base


def full_model_folder(path: str | Path) -> str:
    """``path`` itself for a full model folder (or a hub id); for an adapter folder, the folder of
    its base with the adapter merged in (``<path>/merged``, built on first use)."""
    path_str = str(path)
    if not is_adapter(path_str):
        return path_str
    merged = Path(path_str) / MERGED
    if (merged / "config.json").is_file():
        check_model_folder(merged)
        return str(merged)
    base = adapter_base(path_str)
    if Path(base).is_dir():
        check_model_folder(base, tokenizer=False)
    log.info("merging the LoRA adapter %s into its base %s", path_str, base)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype="auto")
    model = PeftModel.from_pretrained(model, path_str, torch_device="cpu").merge_and_unload()
    return str(save_model_folder(model, path_str, merged))
