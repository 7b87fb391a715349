"""What a complete model folder is, checked before anything spends time on one.

A model folder (a checkpoint, the merged model, a downloaded model) holds a ``config.json`` that
parses, a tokenizer, and safetensors weights holding every byte their headers promise. The
checks read headers and sizes only. ``tokenizer_identity`` says whether two folders turn text
into the same ids (sampling swaps weights only between folders with equal identities; merging
refuses folders without). ``is_training_state`` names what a Trainer checkpoint holds beside
the model (optimizer, RNG, DeepSpeed shards): left out when a checkpoint is copied as a model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from pathlib import Path

from ssp.core.errors import DataError

# What a Trainer checkpoint holds beside the model (optimizer, schedulers, RNG, trainer state,
# DeepSpeed's global_step*/ shards): training state, never part of a model folder.
TRAINING_STATE = (
    "optimizer",
    "scheduler",
    "rng_state",
    "trainer_state",
    "training_args",
    "scaler",
    "latest",
    "zero_to_fp32",
    "global_step",
)


def is_training_state(name: str) -> bool:
    return name.startswith(TRAINING_STATE)


INDEX = "model.safetensors.index.json"
# A LoRA adapter folder (core/adapters.py) holds these instead of config.json and model weights.
ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
# Files a tokenizer is saved in (any one of them means the folder has a tokenizer).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
)


def safetensors_header(path: Path) -> dict:
    """The JSON header of a safetensors file, after checking that the file holds every byte the
    header promises. A truncated file fails here, naming itself (transformers only says
    "incomplete metadata", naming nothing)."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise DataError(f"{path}: truncated safetensors file ({size} bytes, not even a header length)")
        (length,) = struct.unpack("<Q", raw)
        if 8 + length > size:
            raise DataError(f"{path}: truncated safetensors file: header of {length} bytes, file of {size}")
        try:
            header = json.loads(f.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{path}: unreadable safetensors header ({err})") from None
    end = max((m["data_offsets"][1] for k, m in header.items() if k != "__metadata__"), default=0)
    if 8 + length + end != size:
        raise DataError(
            f"{path}: truncated or corrupt safetensors file: its header promises {8 + length + end} bytes, "
            f"the file has {size}"
        )
    return header


def weight_files(model_dir: Path) -> list[Path]:
    """The safetensors files of a model folder (every shard its index names, or model.safetensors)."""
    model_dir = Path(model_dir)
    index = model_dir / INDEX
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError) as err:
            raise DataError(f"{index}: not a safetensors index ({type(err).__name__}: {err})") from None
        return [model_dir / n for n in names]
    single = model_dir / "model.safetensors"
    if single.is_file():
        return [single]
    raise DataError(f"{model_dir}: no model.safetensors or {INDEX} (is this a model folder?)")


def check_model_folder(path: str | Path, tokenizer: bool = True) -> None:
    """Fail with a DataError naming the file unless ``path`` is a complete model folder: a
    config.json that parses, a tokenizer (unless ``tokenizer=False``: weights only), and
    safetensors weights that hold every byte their headers promise. Cheap (headers and sizes
    only): run it before spending time on a model. A LoRA adapter folder passes with a readable
    adapter_config.json and complete adapter weights (its base is checked when it is merged)."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: model folder not found")
    adapter = (path / ADAPTER_CONFIG).is_file()
    config = path / (ADAPTER_CONFIG if adapter else "config.json")
    try:
        json.loads(config.read_text())
    except FileNotFoundError:
        raise DataError(f"{config}: missing (not a complete model folder)") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{config}: not valid JSON ({err})") from None
    if tokenizer and not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise DataError(f"{path}: no tokenizer files ({', '.join(TOKENIZER_FILES[:2])}, ...)")
    if adapter:
        if not (path / ADAPTER_WEIGHTS).is_file():
            raise DataError(f"{path / ADAPTER_WEIGHTS}: missing (an adapter folder without its weights)")
        safetensors_header(path / ADAPTER_WEIGHTS)
        return
    for file in weight_files(path):
        if not file.is_file():
            raise DataError(f"{file}: missing (named by {path / INDEX})")
        safetensors_header(file)


_PROBE_TEXT = "Let's compute 12345 + 6.78 = ?\n\n  \u00dcn\u00efc\u00f6de, tabs\tand \\boxed{x^2} <|im_end|>"


def tokenizer_identity(path: str | Path) -> str:
    """A hash of how a model folder's tokenizer behaves: its vocabulary, special tokens, chat
    template, and the ids it gives a probe text and a chat prompt. Equal for two folders that turn
    prompts into the same ids and back; "" for a folder without tokenizer files.

    Behaviour, not file bytes: transformers 5 rebuilds a tokenizer's pipeline from its class when
    loading, so the tokenizer.json a Trainer checkpoint saves differs from the one the model
    started with (here: another pre-tokenizer and a normalizer) while both load to the same
    tokenizer."""
    path = Path(path)
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        return ""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path))
    except Exception as err:  # noqa: BLE001 - any loading failure names the folder
        raise DataError(f"{path}: its tokenizer does not load ({type(err).__name__}: {err})") from None
    chat = [{"role": "user", "content": _PROBE_TEXT}]
    parts = [
        sorted(tok.get_vocab().items()),
        [tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id],
        tok.chat_template,
        tok(_PROBE_TEXT, add_special_tokens=True)["input_ids"],
        tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        if tok.chat_template
        else None,
        tok.decode(tok(_PROBE_TEXT)["input_ids"]),
    ]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def save_model_folder(model, tokenizer_source: str, out: str | Path) -> Path:
    """``model`` (weights, config, generation config) and the tokenizer of ``tokenizer_source``
    into ``out``, atomically: built under a temporary name beside it, then renamed; removed on any
    error. The context extension and the LoRA merge both write their model folders with it."""
    from transformers import AutoTokenizer

    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(tmp)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
