"""The pipeline's stages: the table of their specs (``stages/spec.py``), and how an input file is identified."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssp.config.recipe import STAGE_ORDER
from ssp.stages import data, merge, probe, rl, sft
from ssp.stages import eval as eval_stage
from ssp.stages.spec import StageSpec

# The table: one line per stage, in pipeline order. Everything else launch/ knows of a stage
# (what it reads, its preflight checks, what starts around it, its report section) is its SPEC.
STAGES: dict[str, StageSpec] = {
    spec.name: spec for spec in (data.SPEC, sft.SPEC, probe.SPEC, merge.SPEC, rl.SPEC, eval_stage.SPEC)
}
assert list(STAGES) == STAGE_ORDER, "config/recipe.py's STAGE_ORDER lists the stages of this table"


def file_identity(path: str) -> dict[str, Any]:
    """Cheap identity of an external input: size and modification time (not a content hash:
    corpora can be many GB). A missing file is reported by the stage itself."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        return {
            "path": str(p),
            "files": len(files),
            "bytes": sum(f.stat().st_size for f in files),
            "mtime_ns": max((f.stat().st_mtime_ns for f in files), default=0),
        }
    if p.is_file():
        st = p.stat()
        return {"path": str(p), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
    return {"path": str(p), "missing": True}
