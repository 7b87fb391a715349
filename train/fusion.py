"""Expert fusion, the library: M_merge = sum_i w_i * M*_i, streamed one tensor at a time.

    merge_checkpoints([("ckpt-a", 0.5), ("ckpt-b", 0.25), ("ckpt-c", 0.25)], "runs/fused")
    ssp merge --out runs/fused ckpt-a:0.5 ckpt-b:0.25 ckpt-c:0.25     # the same from the shell
    ssp stage merge recipes/tiny.yaml     # the pipeline stage (stages/merge.py): the probe's specialists

Departure from the usual merge scripts (which load N models, or one output shard, at once):
the output safetensors files are written by hand, header first (every shape and dtype is
known from the sources' headers), then each tensor as soon as it is averaged. Peak memory is
about one chunk of rows (16M elements) from each source plus a float32 accumulator,
whatever the model or tensor size. Sources
are read tensor by tensor with plain reads (a memory map would keep every page read resident). Averages are taken in float32 and cast back to the
source dtype.

A LoRA adapter checkpoint is merged into its base first (``core/adapters.py``) and averaged as
that full model. Checks before anything is written: every source is a complete model folder whose safetensors
files hold every byte their headers promise (a truncated checkpoint fails naming its file; it
is never read as zeros), all sources share one tokenizer, and they have the same tensor names,
shapes and dtypes (an error names the tensor and both files); weights are >= 0 and sum to 1
unless ``normalize``. Each read is checked for its length. The output folder is complete and loadable (weights, config, tokenizer,
generation config, ``merge_info.json``) and appears atomically: it is built under a temporary
name and renamed; on any error the temporary folder is removed, and the temporary folders of a
merge that was killed (``kill -9`` leaves them) are removed by the next merge into the same place.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from ssp.core.adapters import full_model_folder, is_adapter
from ssp.core.atomic import remove_stale
from ssp.core.errors import DataError, SSPError
from ssp.core.model_folder import (
    INDEX,
    check_model_folder,
    is_training_state,
    safetensors_header,
    tokenizer_identity,
)

CHUNK_ELEMENTS = 1 << 24  # rows are averaged in chunks of about 16M elements (64 MB in float32)
_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


class MergeError(SSPError):
    """Checkpoints or weights that cannot be merged."""


def _layout(model_dir: Path) -> dict[str, str]:
    """tensor name -> the safetensors file holding it."""
    index = model_dir / INDEX
    if index.is_file():
        return json.loads(index.read_text())["weight_map"]
    single = model_dir / "model.safetensors"
    if not single.is_file():
        raise MergeError(f"{model_dir}: no model.safetensors or {INDEX}")
    return {name: "model.safetensors" for name in _header(single) if name != "__metadata__"}


def _header(path: Path) -> dict[str, Any]:
    try:
        return safetensors_header(path)
    except DataError as err:
        raise MergeError(str(err)) from None


def _specs(model_dir: Path) -> dict[str, tuple[str, tuple[int, ...], Path]]:
    """tensor name -> (dtype, shape, file), read from the safetensors headers only."""
    out, headers = {}, {}
    for name, file in _layout(model_dir).items():
        path = model_dir / file
        if path not in headers:
            headers[path] = _header(path)
        meta = headers[path][name]
        out[name] = (meta["dtype"], tuple(meta["shape"]), path)
    return out


def check_weights(weights: list[float], normalize: bool, normalize_name: str = "normalize") -> list[float]:
    """The weights, rescaled to sum to 1 with ``normalize``; ``normalize_name`` is how the caller's
    user sets it (``--normalize``, ``merge.normalize``), for the message."""
    if any(w < 0 for w in weights):
        raise MergeError(f"merge weights must be >= 0, got {weights}")
    total = sum(weights)
    if total <= 0:
        raise MergeError(f"merge weights sum to {total}; at least one must be positive")
    if normalize:
        return [w / total for w in weights]
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise MergeError(
            f"merge weights sum to {total:g}, not 1 (set {normalize_name} to rescale them): {weights}"
        )
    return list(weights)


def _check_folder(d: str | Path) -> None:
    try:
        check_model_folder(d, tokenizer=False)  # weights can be averaged without one
    except DataError as err:
        raise MergeError(f"cannot merge {d}: {err}") from None


def check_compatible(dirs: list[Path]) -> list[dict[str, tuple[str, tuple[int, ...], Path]]]:
    for d in dirs:
        _check_folder(d)
    tokenizers = {d: tokenizer_identity(d) for d in dirs}
    for d in dirs[1:]:
        if tokenizers[d] != tokenizers[dirs[0]]:
            raise MergeError(
                f"{d} and {dirs[0]} have different tokenizers: their weights index different vocabularies "
                "and cannot be averaged"
            )
    specs = [_specs(d) for d in dirs]
    ref = specs[0]
    for spec in specs[1:]:
        for name in sorted(set(ref) | set(spec)):
            if name not in spec:
                raise MergeError(
                    f"tensor {name!r} is in {ref[name][2]} but missing from {dirs[specs.index(spec)]}"
                )
            if name not in ref:
                raise MergeError(f"tensor {name!r} is in {spec[name][2]} but missing from {dirs[0]}")
            (d0, s0, f0), (d1, s1, f1) = ref[name], spec[name]
            if s0 != s1:
                raise MergeError(f"tensor {name!r}: shape {list(s0)} in {f0} but {list(s1)} in {f1}")
            if d0 != d1:
                raise MergeError(f"tensor {name!r}: dtype {d0} in {f0} but {d1} in {f1}")
    return specs


class _Reader:
    """Reads one tensor at a time with plain file reads. Not mmap: pages of a mapped file stay
    in the process's resident set, so memory-mapping three 3 GB sources made the "streaming"
    merge as large as a naive one."""

    def __init__(self, path: Path):
        self.path = path
        self.file = path.open("rb")
        (size,) = struct.unpack("<Q", self.file.read(8))
        self.header = json.loads(self.file.read(size))
        self.data_start = 8 + size

    def rows(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Rows [start, stop) of tensor ``name`` (a 0-d tensor is one row)."""
        meta = self.header[name]
        dtype, shape = _DTYPES[meta["dtype"]], meta["shape"]
        row_bytes = math.prod(shape[1:]) * torch.empty((), dtype=dtype).element_size()
        buf = bytearray((stop - start) * row_bytes)
        self.file.seek(self.data_start + meta["data_offsets"][0] + start * row_bytes)
        got = self.file.readinto(buf)
        if got != len(buf):  # the file changed (or shrank) since its header was checked
            raise MergeError(
                f"{self.path}: tensor {name!r}: read {got} of {len(buf)} bytes (file truncated?)"
            )
        out_shape = [stop - start, *shape[1:]] if shape else []
        return (
            torch.frombuffer(buf, dtype=dtype).reshape(out_shape)
            if buf
            else torch.empty(out_shape, dtype=dtype)
        )

    def close(self) -> None:
        self.file.close()


def _average_rows(name, start, stop, specs, weights, readers, dtype) -> bytes:
    acc = None
    for spec, w in zip(specs, weights, strict=True):
        file = spec[name][2]
        if file not in readers:
            readers[file] = _Reader(file)
        t = readers[file].rows(name, start, stop)
        if not t.is_floating_point():  # integer buffers are not averaged: keep the first
            acc = t if acc is None else acc
            continue
        term = t.to(torch.float32).mul_(w)  # multiply, then add: the naive order, bit for bit
        acc = term if acc is None else acc.add_(term)
    result = acc.to(dtype).contiguous()
    return result.view(torch.uint8).numpy().tobytes() if result.numel() else b""


def _write_shard(path: Path, names: list[str], specs, weights: list[float], metadata: dict) -> None:
    """Stream one safetensors file: header from the known shapes, then each averaged tensor."""
    entries, offset = {}, 0
    for name in names:
        dtype, shape, _ = specs[0][name]
        nbytes = math.prod(shape) * torch.empty((), dtype=_DTYPES[dtype]).element_size()
        entries[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header = json.dumps({"__metadata__": metadata, **entries}, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the format aligns the data section to 8 bytes
    readers: dict[Path, _Reader] = {}
    try:
        with path.open("wb") as out:
            out.write(struct.pack("<Q", len(header)) + header)
            for name in names:
                dtype, shape, _ = specs[0][name]
                n_rows = shape[0] if shape else 1
                step = max(1, CHUNK_ELEMENTS // max(1, math.prod(shape[1:])))
                for start in range(0, n_rows, step):  # bounded memory, however large the tensor
                    out.write(
                        _average_rows(
                            name, start, min(n_rows, start + step), specs, weights, readers, _DTYPES[dtype]
                        )
                    )
    finally:
        for reader in readers.values():
            reader.close()


def merge_checkpoints(
    sources: list[tuple[str | Path, float]],
    out_dir: str | Path,
    *,
    normalize: bool = False,
    overwrite: bool = False,
    info: dict | None = None,
    option_names: dict[str, str] | None = None,
) -> Path:
    """Write the weighted average of ``sources`` [(model folder, weight)] to ``out_dir``.
    ``option_names``: how the caller's user sets ``normalize`` and ``overwrite`` (``--normalize``),
    for messages."""
    names = {"normalize": "normalize", "overwrite": "overwrite", **(option_names or {})}
    given = [str(d) for d, _ in sources]
    for d in filter(is_adapter, given):
        _check_folder(d)  # a broken adapter fails here, before it is merged into its base
    # LoRA adapter checkpoints are averaged as the full models they stand for (core/adapters.py)
    dirs = [Path(full_model_folder(d)) for d in given]
    weights = check_weights([w for _, w in sources], normalize, names["normalize"])
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise MergeError(f"{out_dir} exists (pass {names['overwrite']} to replace it)")
    specs = check_compatible(dirs)
    remove_stale(out_dir.parent, f".{out_dir.name}.tmp-*")  # left by a merge that was killed
    remove_stale(out_dir.parent, f".{out_dir.name}.old-*")
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        layout = _layout(dirs[0])
        by_file: dict[str, list[str]] = defaultdict(list)
        for name, file in layout.items():
            by_file[file].append(name)
        for file, names in sorted(by_file.items()):
            metadata = _header(dirs[0] / file).get("__metadata__") or {"format": "pt"}
            _write_shard(tmp / file, names, specs, weights, metadata)
        for item in dirs[0].iterdir():  # config, tokenizer, generation config, index, ...
            if item.is_file() and not item.name.endswith(".safetensors") and not is_training_state(item.name):
                if item.name == "README.md":  # the source's card describes the source
                    continue
                shutil.copy2(item, tmp / item.name)
        (tmp / "merge_info.json").write_text(
            json.dumps({"sources": given, "weights": weights, **(info or {})}, indent=2)
        )
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def parse_sources(items: list[str]) -> list[tuple[str, float]]:
    """``CKPT[:WEIGHT]`` arguments; no weights at all means uniform."""
    parsed = []
    for item in items:
        path, sep, weight = item.rpartition(":")
        try:
            parsed.append((path, float(weight)) if sep else (item, None))
        except ValueError:
            parsed.append((item, None))
    given = [w is not None for _, w in parsed]
    if any(given) and not all(given):
        raise MergeError("give a weight to every checkpoint (CKPT:WEIGHT) or to none (uniform)")
    if not any(given):
        return [(p, 1.0 / len(parsed)) for p, _ in parsed]
    return parsed
