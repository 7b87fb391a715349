"""Runs whose upstream stages are hand-made: scripted models and problem files with known answers.

    problems = write_problems(tmp_path / "probe_algebra.jsonl", "algebra", gold="7", count=8)
    complete(recipe, SFTOutputs(model=..., checkpoints=[...], log_history=""))   # sft is done

The stage under test then runs for real on inputs whose right answers the test knows."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from ssp.core.manifest import Manifest, now
from ssp.core.outputs import DataOutputs, SFTOutputs, StageOutputs


def write_problems(path: Path, domain: str, gold: str, count: int, start: int = 0) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {"id": f"{domain}-{i}", "domain": domain, "problem": f"Question {i} of {domain}.", "answer": gold}
        for i in range(start, start + count)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def complete(recipe, outputs: StageOutputs) -> None:
    """Record the stage of ``outputs`` as completed in the run's manifest with these outputs."""
    Manifest(recipe.run_dir).update(
        outputs.STAGE,
        status="completed",
        outputs=outputs.to_record(),
        metrics={},
        output_id=uuid.uuid4().hex[:16],
        fingerprint="hand-made",
        ended_at=now(),
    )


PROBE_GOLDS = {"algebra": "7", "counting": "8"}


def scripted_probe_run(root: Path, rates: tuple[float, ...], *overrides: str):
    """(recipe, checkpoints) of a run whose data and sft stages are hand-made: checkpoint-100, -200,
    ... answer "7" with probability ``rates[i]`` (else "8"); 8 algebra problems (gold 7) and 8
    counting problems (gold 8) to probe with 8 samples each."""
    from tests.conftest import fast_recipe
    from tests.helpers.scripted_model import build_scripted_model

    recipe = fast_recipe(
        root,
        "probe.domains=[algebra,counting]",
        "probe.n_samples=8",
        "probe.k=[1,4,8]",
        "probe.select_k=8",
        "probe.max_new_tokens=4",
        *overrides,
    )
    ckpts = [
        str(build_scripted_model(recipe.run_dir / "sft" / "checkpoints" / f"checkpoint-{100 * (i + 1)}", p=p))
        for i, p in enumerate(rates)
    ]
    files = {d: write_problems(root / f"{d}.jsonl", d, g, count=8) for d, g in PROBE_GOLDS.items()}
    complete(recipe, DataOutputs(model="(a test double)", data_card="", probe=files))
    complete(recipe, SFTOutputs(model=ckpts[-1], checkpoints=ckpts, log_history=""))
    return recipe, ckpts
