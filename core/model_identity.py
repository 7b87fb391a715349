"""What a model is, for a made-from record (``core/reuse.py``): the one identity every cache that
holds a model's samples uses (teacher shards, RL pass-rate shards, eval units).

- A local folder: the content hash of each file that shapes its samples (weights, configs,
  tokenizer, chat template: ``MODEL_FILE_SUFFIXES``; training state such as optimizer shards left
  out). Content, not the path: the same model copied elsewhere is the same model; new weights
  written under the same path are not. Hashing reads the weights (~1 GB/s: 3 s for a 1.5B model in
  bf16), once per process for a file that has not changed since (memo keyed on its path, inode,
  size, mtime and ctime). Departure: caches elsewhere (vLLM's, the hub's) trust paths and
  revisions; a run folder's checkpoints are rewritten in place by a re-run, so a path proves
  nothing here.
- A LoRA adapter folder: its own files and its base model's identity.
- A hub id: the id and the commit of its copy in the local hub cache (``revision``; None before
  it was downloaded, which a caller must treat as unknown, never as equal).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from ssp.core.reuse import file_digest

MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".json", ".jinja", ".model", ".txt", ".tiktoken")
"""The files of a model folder that shape its samples (weights, configs, tokenizer, chat template)."""


@cache
def _digest(path: str, stat: tuple[int, ...]) -> str:
    return file_digest(path)  # ``stat`` only keys the memo


def model_identity(model: str | Path) -> dict[str, Any]:
    """The identity of a model folder or hub id (module docstring)."""
    from ssp.core.adapters import adapter_base, is_adapter
    from ssp.core.model_folder import is_training_state

    path = Path(model).expanduser()
    if not path.is_dir():
        return {"hub": str(model), "revision": hub_revision(str(model))}
    files = {}
    for f in sorted(path.iterdir()):
        if f.is_file() and f.suffix in MODEL_FILE_SUFFIXES and not is_training_state(f.name):
            st = f.stat()
            files[f.name] = _digest(str(f.resolve()), (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    identity: dict[str, Any] = {"files": files}
    if is_adapter(path):
        identity["base"] = model_identity(adapter_base(path))
    return identity


def unknown_revision(identity: dict[str, Any]) -> bool:
    """Whether an identity holds a hub model (itself, or an adapter's base) of unknown revision."""
    if "hub" in identity:
        return identity.get("revision") is None
    return "base" in identity and unknown_revision(identity["base"])


def hub_revision(repo_id: str) -> str | None:
    """The commit of the hub model's copy in the local cache (what the engines load), or None."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - not a valid repo id, no hub library: unknown
        return None
    return Path(found).parent.name if isinstance(found, str) else None
