"""What the log of a run holds: ssp's own lines, and the libraries' warnings, each once.

``ssp`` logs at INFO (stage starts and ends, progress, what was skipped or resumed); every other
library logs at WARNING, so Triton's start-up notes and vLLM's engine config dump (one per engine,
about 3 KB each) stay out. Each distinct warning text is shown once per process: Python's default
shows it once per *calling line*, so TRL's "supports vLLM versions ..." came five times per RL
process (a ``once`` filter does not help: CPython keeps "once" per calling module, and forgets it
whenever a library adds a filter). vLLM's deprecation notice for ``torch.distributed.reduce_op``
is ours to ignore. ``VLLM_LOGGING_LEVEL`` and ``PYTHONWARNINGS`` set in the environment win: set
them to INFO / default to see everything again.
"""

from __future__ import annotations

import logging
import os
import warnings


def setup_logging() -> None:
    """Configure the process's log once (the CLI, every torchrun worker)."""
    if logging.getLogger().handlers:
        return
    rank = os.environ.get("RANK")
    prefix = f"[rank {rank}] " if rank not in (None, "0") else ""
    logging.basicConfig(
        level=logging.WARNING, format=f"%(asctime)s ssp {prefix}%(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("ssp").setLevel(logging.INFO)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # read when vllm is imported
    if not os.environ.get("PYTHONWARNINGS"):
        warnings.filterwarnings("ignore", message=r"`torch\.distributed\.reduce_op` is deprecated")
        warnings.showwarning = _once_per_text(warnings.showwarning)


def _once_per_text(show):
    """``show`` (``warnings.showwarning``) for a warning text and category not shown before."""
    shown: set[tuple[str, type]] = set()

    def showwarning(message, category, filename, lineno, file=None, line=None):
        key = (str(message), category)
        if key not in shown:
            shown.add(key)
            show(message, category, filename, lineno, file, line)

    return showwarning
