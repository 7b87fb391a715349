"""The tests' view of an offline W&B run file: launch/wandb_file.py, as two functions."""

from __future__ import annotations

from pathlib import Path

from ssp.launch.wandb_file import read


def history(path: Path) -> list[dict]:
    """Every logged row as {key: value}."""
    return read(path).history()


def run_info(path: Path) -> dict:
    """Id, group, name and config of the run record."""
    return read(path).run_info()
