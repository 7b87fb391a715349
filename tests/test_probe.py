"""The probe and merge stages on the tiny task: specialists, ablations, bad input, resume."""

import json
import math
import shutil
from pathlib import Path

import pytest

from ssp.core.errors import DataError
from ssp.core.manifest import Manifest
from ssp.core.outputs import DataOutputs, SFTOutputs
from ssp.launch.runner import execute_here, run_stage
from ssp.stages.probe import probed_checkpoints, select_specialists

from .conftest import fast_recipe
from .helpers.scripted_model import build_scripted_model, expected_answer
from .helpers.scripted_run import PROBE_GOLDS, complete, scripted_probe_run, write_problems


def test_select_specialists_argmax_with_ties_to_the_later_checkpoint():
    table = {
        "c1": {"algebra": {"pass@4": 0.5, "pass@1": 0.30}, "counting": {"pass@4": 0.2, "pass@1": 0.1}},
        "c2": {"algebra": {"pass@4": 0.5, "pass@1": 0.20}, "counting": {"pass@4": 0.1, "pass@1": 0.1}},
        "c3": {"algebra": {"pass@4": 0.4, "pass@1": 0.25}, "counting": {"pass@4": 0.0, "pass@1": 0.0}},
    }
    assert select_specialists(table, ["algebra", "counting"], "pass@4") == {"algebra": "c2", "counting": "c1"}
    assert select_specialists(table, ["algebra", "counting"], "pass@1") == {"algebra": "c1", "counting": "c2"}


def test_probed_checkpoints_always_include_the_last():
    ckpts = [f"c{i}" for i in range(1, 8)]
    assert probed_checkpoints(ckpts, 1) == ckpts
    assert probed_checkpoints(ckpts, 3) == ["c1", "c4", "c7"]
    assert probed_checkpoints(ckpts, 10) == ["c7"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """data + a short SFT (checkpoints at steps 4 and 8), shared read-only by the tests below."""
    root = tmp_path_factory.mktemp("trained")
    recipe = fast_recipe(root)
    run_stage("data", recipe)
    execute_here("sft", recipe)
    return root


def _copy(trained, tmp_path, *overrides):
    shutil.copytree(trained / "tiny", tmp_path / "tiny")
    return fast_recipe(tmp_path, *overrides)


@pytest.mark.slow
def test_probe_and_merge_stages(trained, tmp_path):
    recipe = _copy(trained, tmp_path, "merge.eval_heldout=true")
    execute_here("probe", recipe)
    probe = Manifest(recipe.run_dir).stage("probe")
    table = json.loads(open(probe["outputs"]["table"]).read())
    assert table["metric"] == "pass@4" and len(table["table"]) == 2  # checkpoints 4 and 8
    for row in table["table"].values():
        assert set(row) == {"algebra", "number_theory", "counting", "statistics", "all"}
        assert all(0 <= v <= 1 for d in row.values() for v in d.values())
        assert all(d["pass@1"] <= d["pass@2"] <= d["pass@4"] for d in row.values())
    assert (recipe.run_dir / "probe" / "probe_heatmap.png").stat().st_size > 1000
    assert set(probe["outputs"]["specialists"]) == {"algebra", "number_theory", "counting", "statistics"}

    execute_here("merge", recipe)
    merge = Manifest(recipe.run_dir).stage("merge")
    assert merge["outputs"]["merged"] and (recipe.run_dir / "merge" / "model" / "model.safetensors").is_file()
    assert sum(merge["metrics"]["weights"].values()) == pytest.approx(1.0)
    heldout = merge["metrics"]["heldout"]
    assert len(heldout) == 2 and all("pass@4" in r["pass"]["all"] for r in heldout.values())


@pytest.mark.slow
def test_probing_disabled_uses_the_last_sft_checkpoint(trained, tmp_path):
    recipe = _copy(trained, tmp_path, "probe.enabled=false")
    execute_here("probe", recipe)
    execute_here("merge", recipe)
    merge = Manifest(recipe.run_dir).stage("merge")
    assert not merge["outputs"]["merged"]
    assert merge["outputs"]["model"] == Manifest(recipe.run_dir).stage("sft")["outputs"]["model"]
    assert not (recipe.run_dir / "merge" / "model").exists()


@pytest.mark.slow
def test_pass_at_1_metric_and_a_domain_subset(trained, tmp_path):
    recipe = _copy(trained, tmp_path, "probe.metric=pass@1", "probe.domains=[algebra,counting]")
    execute_here("probe", recipe)
    probe = Manifest(recipe.run_dir).stage("probe")
    assert probe["metrics"]["metric"] == "pass@1"
    assert set(probe["outputs"]["specialists"]) == {"algebra", "counting"}


@pytest.mark.slow
def test_empty_probing_set_fails_naming_the_domain(trained, tmp_path):
    recipe = _copy(trained, tmp_path)
    (recipe.run_dir / "data" / "probe" / "counting.jsonl").write_text("")
    # The copied manifest points at the original files; point counting at the emptied one.
    manifest = Manifest(recipe.run_dir)
    outputs = manifest.stage("data")["outputs"]
    outputs["probe"]["counting"] = str(recipe.run_dir / "data" / "probe" / "counting.jsonl")
    manifest.update("data", outputs=outputs)
    with pytest.raises(DataError, match=r"probe/counting split is empty"):
        execute_here("probe", recipe)


@pytest.mark.slow
def test_unknown_probe_domain_is_named(trained, tmp_path):
    recipe = _copy(trained, tmp_path, "probe.domains=[algebra,geometry]")
    with pytest.raises(DataError, match=r"probe.domains: no probing set for \['geometry'\]"):
        execute_here("probe", recipe)


@pytest.mark.slow
def test_interrupted_probe_resumes_checkpoint_by_checkpoint(trained, tmp_path):
    recipe = _copy(trained, tmp_path)
    execute_here("probe", recipe)
    by_ckpt = recipe.run_dir / "probe" / "by_checkpoint"
    first, second = sorted(by_ckpt.glob("*.json"))
    kept = first.stat().st_mtime_ns
    second.unlink()  # as if killed while probing the second checkpoint
    Manifest(recipe.run_dir).update("probe", status="running")
    execute_here("probe", recipe)
    assert first.stat().st_mtime_ns == kept, "the finished checkpoint was probed again"
    assert second.is_file() and Manifest(recipe.run_dir).stage("probe")["status"] == "completed"
    # a result that does not say what it was made from (an older ssp), or made from another
    # checkpoint content, is probed again (issue 29: reuse is keyed on what it was made from)
    import json

    first.write_text(json.dumps(json.loads(first.read_text())["result"]))
    stamped = json.loads(second.read_text())
    stamped["made_from"]["checkpoint"]["files"]["model.safetensors"] = "other weights"
    second.write_text(json.dumps(stamped))
    Manifest(recipe.run_dir).update("probe", status="running")
    execute_here("probe", recipe)
    for f in (first, second):
        assert (
            json.loads(f.read_text())["made_from"]["checkpoint"]["files"]["model.safetensors"]
            != "other weights"
        )


# --- against values computed independently: scripted checkpoints whose answers are known ----------


def _pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator, written out again with binomials (independent of sampling/pass_at_k)."""
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@pytest.mark.slow
def test_probe_finds_the_specialists_a_scripted_run_was_built_with(tmp_path):
    """Two checkpoints: one answers "7" 80% of the time, the other 20%. Algebra's gold is 7 and
    counting's is 8, so each checkpoint is the other domain's specialist. The probe's counts must
    equal the test's own reading of every saved completion, and its Pass@k the binomial formula
    on those counts; a reward that always returns 0 or always fails makes this test fail."""
    import pyarrow.parquet as pq

    recipe, ckpts = scripted_probe_run(tmp_path, (0.8, 0.2))
    golds = PROBE_GOLDS
    execute_here("probe", recipe)

    out = Manifest(recipe.run_dir).stage("probe")["outputs"]
    assert out["specialists"] == {"algebra": ckpts[0], "counting": ckpts[1]}
    table = json.loads(open(out["table"]).read())
    for ckpt, p in zip(ckpts, (0.8, 0.2), strict=True):
        samples = pq.read_table(
            recipe.run_dir / "probe" / "completions" / f"{Path(ckpt).name}.parquet"
        ).to_pylist()
        assert len(samples) == 16 * 8 and {s["status"] for s in samples} == {"scored"}
        for domain, gold in golds.items():
            correct = [
                sum(expected_answer(s["text"]) == gold for s in samples if s["problem_id"] == f"{domain}-{i}")
                for i in range(8)
            ]
            row = table["table"][ckpt][domain]
            assert row["pass@1"] == pytest.approx(sum(correct) / 64)
            assert row["pass@4"] == pytest.approx(sum(_pass_at_k(8, c, 4) for c in correct) / 8)
            assert row["pass@8"] == pytest.approx(sum(_pass_at_k(8, c, 8) for c in correct) / 8)
            rate = p if gold == "7" else 1 - p
            assert abs(row["pass@1"] - rate) < 0.2, (ckpt, domain, row)  # the script, sampled 64 times
        stats = table["stats"][ckpt]
        assert (stats["unscorable"], stats["timeouts"], stats["errors"]) == (0, 0, 0)
    markdown = (recipe.run_dir / "probe" / "probe_table.md").read_text()
    assert "| checkpoint | algebra | counting | unscorable | timed out | errors |" in markdown


def test_a_truncated_checkpoint_fails_before_any_sampling_naming_its_file(tmp_path):
    recipe = fast_recipe(tmp_path, "probe.domains=[algebra]")
    ckpts = [
        str(build_scripted_model(recipe.run_dir / "sft" / "checkpoints" / f"checkpoint-{s}", p=0.5))
        for s in (100, 200)
    ]
    weights = Path(ckpts[1]) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    problems = {"algebra": write_problems(tmp_path / "a.jsonl", "algebra", "7", 4)}
    complete(recipe, DataOutputs(model="(a test double)", data_card="", probe=problems))
    complete(recipe, SFTOutputs(model=ckpts[-1], checkpoints=ckpts, log_history=""))
    with pytest.raises(DataError, match=rf"{weights}: truncated or corrupt safetensors file"):
        execute_here("probe", recipe)
    assert not list((recipe.run_dir / "probe").glob("by_checkpoint/*.json")), "it sampled before checking"
