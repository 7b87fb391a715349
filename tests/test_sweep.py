"""``ssp sweep``: arms x seeds expanded and named, bad grids refused before anything runs, identical
stages shared between arms (counted from the stages actually launched), resume, and ``--from``."""

from __future__ import annotations

import pytest

from core.errors import RecipeError
from core.manifest import Manifest
from launch import runner
from launch.sweep import expand, parse_grid, run_sweep

from .conftest import FAST, TINY


def test_grid_parsing():
    assert parse_grid(["rl.lam=0,1,4", "data.domains=[algebra,counting],[counting]"]) == {
        "rl.lam": [0, 1, 4],
        "data.domains": [["algebra", "counting"], ["counting"]],
    }
    for bad, msg in (
        ([], "an empty grid"),
        (["rl.lam"], "expected KEY=V1,V2"),
        (["rl.lam="], "expected KEY=V1,V2"),
        (["rl.lam=0,,4"], "an empty value"),
        (["rl.lam=0,0"], "a value is repeated"),
        (["rl.lam=0", "rl.lam=1"], "rl.lam is given twice"),
    ):
        with pytest.raises(RecipeError, match=msg):
            parse_grid(bad)


def test_arms_are_expanded_named_and_seeded(tmp_path):
    arms = expand(TINY, {"rl.lam": [0, 4.0], "rl.p0": [0.5]}, [0, 2], [], tmp_path / "sw")
    assert [a.name for a in arms] == [
        "lam-0_p0-0.5_seed-0",
        "lam-0_p0-0.5_seed-2",
        "lam-4.0_p0-0.5_seed-0",
        "lam-4.0_p0-0.5_seed-2",
    ]
    a = arms[3].recipe
    assert (a.rl.lam, a.sft.seed, a.rl.seed, a.data.seed) == (4.0, 44, 2, 1234)  # data stays the same
    assert a.run_dir == tmp_path / "sw" / "lam-4.0_p0-0.5_seed-2"
    # a key present in two sections is named in full
    arms = expand(TINY, {"sft.seed": [1], "rl.seed": [1]}, [0], [], tmp_path, seed_keys=())
    assert arms[0].name == "sft-seed-1_rl-seed-1_seed-0"


@pytest.mark.parametrize(
    "grid, msg",
    [
        ({"rl.lamda": [0, 1]}, r"sweep arm lamda-0_seed-0: .*rl.lamda"),
        ({"rl.lam": ["abc"]}, r"sweep arm lam-abc_seed-0: .*rl.lam"),
        ({"sft.learning_rate": [-1]}, r"sft.learning_rate: must be > 0"),
    ],
)
def test_bad_arms_fail_before_anything_runs(tmp_path, grid, msg):
    with pytest.raises(RecipeError, match=msg):
        run_sweep(TINY, grid, [0], [f"output_root={tmp_path}"])
    assert not any(tmp_path.iterdir())


def test_seed_keys_must_be_integer_keys(tmp_path):
    with pytest.raises(RecipeError, match="--seed-keys: the recipe has no key sft.sed"):
        expand(TINY, {"rl.lam": [0]}, [0], [], tmp_path, seed_keys=("sft.sed",))


def test_identical_stages_run_once_and_a_rerun_runs_nothing(tmp_path, monkeypatch):
    """Two data sizes x two SFT learning rates x one seed, stage data only: the data stage runs once
    per data size (2 of 4 arms) and is shared by the arms that differ only in the SFT key; their
    manifests record it as shared, with the first arm's outputs. (Stage data only: the sharing is
    stage-agnostic, and two SFT launches would add ~40 s to make test.)"""
    launched = []
    real = runner.run_stage

    def counting(name, recipe, **kw):
        launched.append((recipe.run_name, name))
        return real(name, recipe, **kw)

    monkeypatch.setattr(runner, "run_stage", counting)
    overrides = [f"output_root={tmp_path}", *FAST, "stages=[data]"]
    grid = {"data.train_problems_per_domain": [30, 31], "sft.learning_rate": [0.001, 0.002]}
    folder = run_sweep(TINY, grid, [0], overrides, name="lr")
    assert launched == [
        ("train_problems_per_domain-30_learning_rate-0.001_seed-0", "data"),
        ("train_problems_per_domain-31_learning_rate-0.001_seed-0", "data"),
    ]
    for size in (30, 31):
        first, second = (
            Manifest(folder / f"train_problems_per_domain-{size}_learning_rate-{lr}_seed-0")
            for lr in (0.001, 0.002)
        )
        shared = second.stage("data")
        assert shared["shared_from"] == str(first.path.parent / "data")
        assert shared["outputs"] == first.stage("data")["outputs"] and shared["cost"]["hours"] == 0.0
        assert not (second.path.parent / "data").exists() and not first.stage("data").get("shared_from")
        assert "shared from" in (second.path.parent / "report.md").read_text()

    # resume: the same sweep again re-runs nothing and changes no manifest
    before = {p: p.read_bytes() for p in folder.glob("*/manifest.json")}
    run_sweep(TINY, grid, [0], overrides, name="lr")
    # (run_stage is called per stage, finds it up to date and runs nothing: started_at would change)
    assert {p: p.read_bytes() for p in folder.glob("*/manifest.json")} == before

    # another sweep into the same folder is refused
    with pytest.raises(RecipeError, match=r"holds another sweep \(differs in \['grid'\]\)"):
        run_sweep(TINY, {"sft.learning_rate": [0.003]}, [0], overrides, name="lr")


def test_from_branches_a_run_from_another_runs_completed_stages(tmp_path):
    """--from: the branch shares the donor's data stage (its config is the same), never touches the
    donor's folder, and a stage whose config differs would run in the branch (shown above)."""
    from launch.runner import run_pipeline

    from .conftest import fast_recipe

    base = fast_recipe(tmp_path, "stages=[data]", "run_name=a")
    run_pipeline(base)
    before = (base.run_dir / "manifest.json").read_bytes()
    branch = fast_recipe(tmp_path, "stages=[data]", "run_name=b", "sft.learning_rate=1e-3")
    run_pipeline(branch, donors=[base.run_dir])
    assert Manifest(branch.run_dir).stage("data")["shared_from"] == str(base.run_dir / "data")
    assert (base.run_dir / "manifest.json").read_bytes() == before
    assert not (branch.run_dir / "data").exists()


def test_presets_read_the_recipes_own_values():
    from config.recipe import load_recipe
    from launch.sweep import preset_grid

    from .conftest import ROOT

    tiny = load_recipe(TINY)
    assert preset_grid("entropy", tiny) == {"rl.lam": [0.0, 4.0]}
    assert preset_grid("diversity", tiny) == {"data.solutions_per_problem": [1, 3]}
    assert preset_grid("probing", tiny) == {"probe.enabled": [True, False]}
    built = load_recipe(ROOT / "recipes" / "tiny_teacher.yaml")
    assert preset_grid("diversity", built) == {"data.teacher.solutions_per_problem": [1, 3]}
    with pytest.raises(RecipeError, match="rl.lam is 0"):
        preset_grid("entropy", load_recipe(TINY, ["rl.lam=0"]))
    with pytest.raises(RecipeError, match="unknown; known: entropy"):
        preset_grid("entrpy", tiny)
