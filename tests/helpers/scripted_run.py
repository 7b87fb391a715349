"""Runs whose upstream stages are hand-made: scripted models and problem files with known answers.

    problems = write_problems(tmp_path / "probe_algebra.jsonl", "algebra", gold="7", count=8)
    complete(recipe, "sft", {"checkpoints": [...], "final": ...})   # the manifest says sft is done

The stage under test then runs for real on inputs whose right answers the test knows."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from core.manifest import Manifest, now


def write_problems(path: Path, domain: str, gold: str, count: int, start: int = 0) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {"id": f"{domain}-{i}", "domain": domain, "problem": f"Question {i} of {domain}.", "answer": gold}
        for i in range(start, start + count)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def complete(recipe, stage: str, outputs: dict) -> None:
    """Record ``stage`` as completed in the run's manifest with these outputs."""
    Manifest(recipe.run_dir).update(
        stage,
        status="completed",
        outputs=outputs,
        metrics={},
        output_id=uuid.uuid4().hex[:16],
        fingerprint="hand-made",
        ended_at=now(),
    )
