"""One home per stage: launch/ names no stage, and a new stage is one module plus one table line.

The new stage below (``count``: how many SFT rows the data stage wrote) is defined in this file
alone, as a researcher would write ``stages/count.py``: its ``run``, its outputs type, its preflight
check, its report section and its results table. Put in the table (``launch/stages.py``) and in the
recipe's stage list (``config/recipe.py: STAGE_ORDER``, the names a recipe may ask for), it runs in
``ssp run`` between the real stages, its outputs go through the manifest as its type, preflight
refuses a recipe it cannot run, and the report and the results show its section and table. Nothing
in launch/ changes for it: the AST check below keeps launch/ free of stage names.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from typing import ClassVar

import pytest

from ssp.config import recipe as recipe_module
from ssp.core.checks import Checks
from ssp.core.context import StageContext, StageResult
from ssp.core.corpus import SFT_FIELDS, load_rows
from ssp.core.errors import RecipeError
from ssp.core.manifest import Manifest
from ssp.core.outputs import OUTPUTS, DataOutputs, StageOutputs
from ssp.launch import stages as stage_table
from ssp.stages.spec import StageSpec

from .conftest import ROOT, fast_recipe

# ------------------------------------------------------------------ "stages/count.py"


@dataclass(frozen=True)
class CountOutputs(StageOutputs):
    STAGE: ClassVar[str] = "count"
    counts: str  # count.json


OUTPUTS.pop("count")  # defining the type registered it: only the fixture below puts it in place

REQUIRED: list[str] = []  # a file the stage says it reads (set by a test)


def run(recipe, ctx: StageContext) -> StageResult:
    rows = load_rows(ctx.upstream(DataOutputs).sft, SFT_FIELDS, "sft")
    out = ctx.stage_dir / "count.json"
    out.write_text(json.dumps({"sft_rows": len(rows)}))
    return StageResult(outputs=CountOutputs(counts=str(out)), metrics={"sft_rows": len(rows)})


def preflight(recipe, checks: Checks) -> None:
    for path in REQUIRED:
        checks.file(path, "count.required")


def report(recipe, manifest: Manifest) -> list[str]:
    counts = json.loads(open(manifest.outputs("count").counts).read())
    return ["## Row count", "", f"{counts['sft_rows']} SFT rows.", ""]


SPEC = StageSpec(
    "count",
    run,
    needs=("data",),
    distributed=False,
    sections=lambda r: (r.data,),
    preflight=preflight,
    report=report,
    results=lambda r, m: [f"Rows counted: {m.stage('count')['metrics']['sft_rows']}"],
)

# ------------------------------------------------------------------ the test


@pytest.fixture
def with_count_stage():
    """The table line and the recipe's name for the stage, put back afterwards (both are read by
    modules that imported them by name, so they change in place)."""
    table, order = dict(stage_table.STAGES), list(recipe_module.STAGE_ORDER)
    stage_table.STAGES.clear()
    stage_table.STAGES.update(
        {"data": table["data"], "count": SPEC, **{k: v for k, v in table.items() if k != "data"}}
    )
    recipe_module.STAGE_ORDER.insert(1, "count")
    OUTPUTS["count"] = CountOutputs
    try:
        yield
    finally:
        OUTPUTS.pop("count")
        stage_table.STAGES.clear()
        stage_table.STAGES.update(table)
        recipe_module.STAGE_ORDER[:] = order
        REQUIRED.clear()


@pytest.mark.slow
def test_a_new_stage_is_one_module_and_one_table_line(with_count_stage, tmp_path):
    from ssp.launch.report import results_table, write_report
    from ssp.launch.runner import run_pipeline

    recipe = fast_recipe(tmp_path, "stages=[data,count]")
    REQUIRED.append(str(tmp_path / "not-there.txt"))
    with pytest.raises(RecipeError, match=r"count.required: file not found: .*not-there.txt"):
        run_pipeline(recipe)
    assert not (recipe.run_dir / "count").exists(), "preflight let the stage start"

    REQUIRED.clear()
    run_pipeline(recipe)
    written = len(load_rows(Manifest(recipe.run_dir).outputs("data").sft, SFT_FIELDS, "sft"))
    outputs = Manifest(recipe.run_dir).outputs("count")
    assert isinstance(outputs, CountOutputs)
    assert json.loads(open(outputs.counts).read()) == {"sft_rows": written}
    report = write_report(recipe).read_text()
    assert f"## Row count\n\n{written} SFT rows." in report
    assert report.index("## Data card") < report.index("## Row count") < report.index("## Cost")
    assert f"Rows counted: {written}" in results_table(recipe)


# The subcommands `ssp merge` and `ssp eval` (commands, not the stages of a run) are the only
# stage-like names launch/ may spell.
COMMANDS = {("cli.py", "merge"): 2, ("cli.py", "eval"): 2}


def stage_names_in(folder) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in recipe_module.STAGE_ORDER:
                found[(path.name, node.value)] = found.get((path.name, node.value), 0) + 1
    return found


def test_launch_names_no_stage():
    """What launch/ knows of a stage it reads from the stage's SPEC: a stage name spelled in
    launch/ is a per-stage rule living in the wrong place."""
    assert stage_names_in(ROOT / "launch") == COMMANDS


def test_the_table_is_the_pipeline_order():
    assert list(stage_table.STAGES) == recipe_module.STAGE_ORDER
    for name, spec in stage_table.STAGES.items():
        assert spec.name == name
        assert spec.run.__module__ == f"ssp.stages.{name}", f"{name}'s run lives in its own module"
