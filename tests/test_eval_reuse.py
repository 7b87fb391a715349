"""Eval units are reused only when made from exactly what they would be made from now (issue 29),
and models with the same folder name are all evaluated, under names that tell them apart.

The models are scripted (tests/helpers/scripted_model.py): one answers "7" always, one never, so
each number is known before sampling; sampling is transformers on CPU, 4 problems, 4 tokens."""

from __future__ import annotations

import json
import shutil

import pytest

from ssp.config.eval import BenchmarkSpec, EvalConfig
from ssp.core.errors import RecipeError
from ssp.evaluation.evaluate import evaluate
from ssp.sampling import scoring

from .helpers.scripted_model import build_scripted_model, expected_answer
from .helpers.scripted_run import write_problems


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    """(right, wrong, problems): a model always answering 7, one never, four problems of gold 7."""
    root = tmp_path_factory.mktemp("scripted")
    right = build_scripted_model(root / "right", p=1.0)
    wrong = build_scripted_model(root / "wrong", p=0.0)
    return right, wrong, write_problems(root / "heldout.jsonl", "algebra", gold="7", count=4)


def _run(out, model, problems, n=2, graders=()):
    spec = BenchmarkSpec(
        name="tiny_heldout", source=problems, n_samples=n, max_new_tokens=4, reward_options={"workers": 1}
    )
    cfg = EvalConfig(models=list(model), benchmarks=[spec], graders=list(graders))
    return evaluate(model, [spec], cfg, out)["results"]["m"]["tiny_heldout"]


def _completions(out):
    import pyarrow.parquet as pq

    rows = pq.read_table(out / "completions" / "m__tiny_heldout.parquet").to_pylist()
    return [expected_answer(r["text"]) for r in rows]


class Sampled(Exception):
    """Raised instead of loading a model: the unit was not reused."""


def _no_sampling(*args, **kwargs):
    raise Sampled


@pytest.mark.slow
def test_a_unit_is_reused_only_when_made_from_the_same_model_and_settings(tmp_path, scripted, monkeypatch):
    """Results named checkpoint-8 once held the base model's numbers at n=2: a unit file was
    reused whenever it existed. Each change below must sample again, and nothing else must (where
    sampling would be enough to fail, ``Sampled`` stands in for it: no time spent)."""
    right, wrong, problems = scripted
    out, ckpt = tmp_path / "eval", tmp_path / "checkpoint-8"
    unit = out / "by_unit" / "m__tiny_heldout.json"
    shutil.copytree(wrong, ckpt)
    assert _run(out, {"m": str(ckpt)}, problems)["pass@1"] == 0.0 and _completions(out) == ["8"] * 8

    # (a) another model at the same path (a checkpoint folder written again): sampled again
    shutil.rmtree(ckpt)
    shutil.copytree(right, ckpt)
    m = _run(out, {"m": str(ckpt)}, problems)
    assert m["pass@1"] == 1.0 and _completions(out) == ["7"] * 8

    # (b) another n: 4 samples per problem
    m = _run(out, {"m": str(ckpt)}, problems, n=4)
    assert (m["samples_per_problem"], m["pass@1"]) == (4, 1.0) and _completions(out) == ["7"] * 16
    assert "graders" not in m

    # (c) other graders: graded again, each grader's Pass@1 there
    m = _run(out, {"m": str(ckpt)}, problems, n=4, graders=["ssp", "deepscaler"])
    assert m["graders"]["pass@1"] == {"ssp": 1.0, "deepscaler": 1.0} and m["graders"]["samples"] == 16

    # (d) the same model and settings: reused, nothing sampled, the unit file untouched
    recorded = unit.read_text()
    assert json.loads(recorded)["made_from"]["protocol"]["n_samples"] == 4
    monkeypatch.setattr(scoring, "make_generator", _no_sampling)
    assert _run(out, {"m": str(ckpt)}, problems, n=4, graders=["ssp", "deepscaler"]) == m
    assert unit.read_text() == recorded
    # ... but not another model folder under the same name (the same weights: another path)
    with pytest.raises(Sampled):
        _run(out, {"m": str(wrong)}, problems, n=4, graders=["ssp", "deepscaler"])
    # ... nor a unit without a record of what it was made from (written by an older ssp)
    unit.write_text(json.dumps(m))
    with pytest.raises(Sampled):
        _run(out, {"m": str(ckpt)}, problems, n=4, graders=["ssp", "deepscaler"])


def test_display_names_never_collide():
    """Sweep arms' final models share a folder name: each gets the shortest tail that tells it apart."""
    from ssp.evaluation.evaluate import model_names

    names = model_names([(None, "runs/A/final"), (None, "runs/B/final"), (None, "runs/C/model")])
    assert names == {"A/final": "runs/A/final", "B/final": "runs/B/final", "model": "runs/C/model"}
    names = model_names([(None, "x/A/final"), (None, "y/A/final"), ("base", "q"), (None, "z/base")])
    assert list(names) == ["x/A/final", "y/A/final", "base", "z/base"]
    with pytest.raises(RecipeError, match="the name 'a' is given to two models"):
        model_names([("a", "x"), ("a", "y")])
    with pytest.raises(RecipeError, match="'m', 'm' cannot be told apart by name; name them"):
        model_names([(None, "m"), (None, "m")])


@pytest.mark.slow
def test_ssp_eval_keeps_every_model_whose_folders_share_a_name(tmp_path, scripted):
    """`ssp eval A/final B/final C/model` once evaluated two models ("2/2 pairs done") and said nothing."""
    from ssp.launch.cli import main

    right, wrong, problems = scripted
    for arm, model in (("A", right), ("B", wrong), ("C", right)):
        shutil.copytree(model, tmp_path / arm / ("model" if arm == "C" else "final"))
    out = tmp_path / "e"
    paths = [str(tmp_path / "A" / "final"), str(tmp_path / "B" / "final"), str(tmp_path / "C" / "model")]
    args = ["eval", *paths, "--benchmarks", f"tiny_heldout={problems}", "--n-samples", "1"]
    assert main([*args, "--max-new-tokens", "4", "--backend", "hf", "--out", str(out)]) == 0
    summary = json.loads((out / "results.json").read_text())
    assert summary["models"] == {"A/final": paths[0], "B/final": paths[1], "model": paths[2]}
    got = {name: per["tiny_heldout"]["pass@1"] for name, per in summary["results"].items()}
    assert got == {"A/final": 1.0, "B/final": 0.0, "model": 1.0}
    table = (out / "results.md").read_text()
    assert all(f"| {name} |" in table for name in got)
