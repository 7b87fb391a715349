"""core/outputs.py is the one definition of what each stage hands on: records round-trip through the
manifest as their types, a record that does not match stops naming the stage, the merge stage's
held-out scores travel as data (a record written before, a file plus a label, is still read), and no
product code reaches a stage's outputs by a string key."""

from __future__ import annotations

import ast
import json

import pytest

from ssp.core.context import StageContext
from ssp.core.errors import DataError, StageError
from ssp.core.manifest import Manifest
from ssp.core.outputs import (
    OUTPUTS,
    DataOutputs,
    EvalOutputs,
    MergeOutputs,
    ProbeOutputs,
    RLOutputs,
    SFTOutputs,
    read_outputs,
)

from .conftest import ROOT

EXAMPLES = [
    DataOutputs(model="m", data_card="c.md", sft="s.jsonl", eval="e.jsonl", probe={"algebra": "p.jsonl"}),
    SFTOutputs(model="ck-8", checkpoints=["ck-4", "ck-8"], log_history="h.json"),
    ProbeOutputs(enabled=True, specialists={"algebra": "ck-4"}, domains=["algebra"], table="t.json"),
    ProbeOutputs(enabled=False, specialists={}),
    MergeOutputs(model="spec", merged=True, heldout={"pass@1": 0.25, "pass@8": 0.5}),
    RLOutputs(model="sig", phases=["p0", "sig"]),
    EvalOutputs(results="r.json", markdown="r.md", chart="c.png", completions="comp"),
]


@pytest.mark.parametrize("out", EXAMPLES, ids=lambda o: type(o).__name__)
def test_outputs_round_trip_through_the_manifest_as_their_type(tmp_path, out):
    Manifest(tmp_path).update(out.STAGE, status="completed", outputs=out.to_record())
    assert Manifest(tmp_path).outputs(out.STAGE) == out
    assert (
        json.loads((tmp_path / "manifest.json").read_text())["stages"][out.STAGE]["outputs"]
        == out.to_record()
    )


def test_every_stage_of_the_pipeline_has_its_outputs_type():
    from ssp.config.recipe import STAGE_ORDER

    assert list(OUTPUTS) == list(STAGE_ORDER)


def test_a_record_that_does_not_match_stops_naming_the_stage_and_the_fields():
    with pytest.raises(
        DataError, match=r"sft stage's outputs .*unknown fields \['modle'\], missing \['model'\]"
    ):
        read_outputs("sft", {"modle": "x", "checkpoints": [], "log_history": "h"})


def test_the_data_splits_map_to_fields_and_an_unknown_split_is_refused(tmp_path):
    out = DataOutputs.from_splits(
        {"sft": tmp_path / "sft.jsonl", "probe/counting": tmp_path / "p.jsonl"},
        "tiny-model",
        tmp_path / "c.md",
    )
    assert (out.sft, out.rl, out.eval, out.probe) == (
        str(tmp_path / "sft.jsonl"),
        None,
        None,
        {"counting": str(tmp_path / "p.jsonl")},
    )
    with pytest.raises(ValueError, match="sft_problems"):
        DataOutputs.from_splits({"sft_problems": tmp_path / "x.jsonl"}, "m", tmp_path / "c.md")


def test_a_merge_record_written_as_a_file_and_a_label_is_read_as_the_scores(tmp_path):
    scores = {"pass@1": 0.125, "pass@8": 0.5}
    (tmp_path / "heldout.json").write_text(json.dumps({"spectrum (merged)": scores, "last SFT": {}}))
    old = {
        "model": "spec",
        "merged": True,
        "heldout": {"file": str(tmp_path / "heldout.json"), "key": "spectrum (merged)"},
    }
    assert read_outputs("merge", old).heldout == scores
    gone = {**old, "heldout": {"file": str(tmp_path / "missing.json"), "key": "spectrum (merged)"}}
    assert read_outputs("merge", gone).heldout is None  # RL then samples the spectrum itself


def test_a_stage_reads_only_the_upstream_outputs_it_was_given(tmp_path):
    data = EXAMPLES[0]
    ctx = StageContext("sft", tmp_path, tmp_path / "sft", {"data": data})
    assert ctx.upstream(DataOutputs) is data
    with pytest.raises(StageError, match="sft: reads the merge stage's outputs"):
        ctx.upstream(MergeOutputs)


PRODUCT = ("core", "config", "reward", "sampling", "data_pipeline", "train", "evaluation", "stages", "launch")
ALLOWED = {"core/manifest.py", "evaluation/curves.py"}  # read a manifest entry's record, into its type


def _string_key_reads(root):
    """``x["outputs"]`` / ``x.get("outputs")`` and ``<anything>.inputs["stage"]`` in product code."""
    found = []
    for pkg in PRODUCT:
        for path in sorted((root / pkg).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            for node in ast.walk(ast.parse(path.read_text())):
                key = None
                if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                    key = node.slice.value
                    if (
                        isinstance(node.value, ast.Attribute)
                        and node.value.attr == "inputs"
                        and isinstance(key, str)
                    ):
                        found.append(f"{rel}:{node.lineno} .inputs[{key!r}]")
                elif (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "get"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    key = node.args[0].value
                if key == "outputs" and rel not in ALLOWED:
                    found.append(f"{rel}:{node.lineno} reads a manifest entry's 'outputs' by key")
    return found


def test_no_product_code_reaches_a_stages_outputs_by_a_string_key():
    assert _string_key_reads(ROOT) == []


def test_the_check_sees_a_string_key_read(tmp_path):
    """Broken on purpose: the two forms the stages used before."""
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "bad.py").write_text(
        'rows = ctx.inputs["data"]["eval"]\nmodel = manifest.stage("merge")["outputs"]["model"]\n'
    )
    assert _string_key_reads(tmp_path) == [
        "stages/bad.py:1 .inputs['data']",
        "stages/bad.py:2 reads a manifest entry's 'outputs' by key",
    ]
