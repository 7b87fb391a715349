"""LiveCodeBench's stored test cases, read without running anything they hold.

``public_test_cases`` is a JSON string of ``[{"input", "output", "testtype"}]``;
``private_test_cases`` is that JSON string pickled, zlib-compressed and base64-encoded (some
releases store plain JSON there too). Unpickling downloaded data could run code, so only plain
values are allowed: a pickle that names any class or function is refused. Read by the eval
benchmarks (``evaluation/benchmarks.py``) and by a code source in LiveCodeBench's layout
(``data_pipeline/code_layouts.py``).
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import zlib
from typing import Any


class _StringsOnly(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a benchmark file")


def decode_tests(raw: Any) -> list[dict[str, Any]]:
    """The tests stored in ``raw`` (a list, JSON, or LiveCodeBench's compressed form; nothing: []);
    ValueError naming what it is not."""
    if isinstance(raw, list):
        return raw
    if not isinstance(raw, str) or not raw.strip():
        return []
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        pass
    try:
        inner = _StringsOnly(io.BytesIO(zlib.decompress(base64.b64decode(raw)))).load()
        return json.loads(inner) if isinstance(inner, str | bytes) else inner
    except Exception as err:  # noqa: BLE001 - any decoding failure is a data error
        raise ValueError(
            f"neither JSON nor LiveCodeBench's compressed form ({type(err).__name__}: {err})"
        ) from None
