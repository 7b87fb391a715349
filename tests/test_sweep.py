"""``ssp sweep``: arms x seeds expanded and named, bad grids refused before anything runs, identical
stages shared between arms (counted from the stages actually launched), resume, and ``--from``."""

from __future__ import annotations

import pytest

from ssp.core.errors import RecipeError
from ssp.core.manifest import Manifest
from ssp.launch import runner
from ssp.launch.sweep import expand, parse_grid, run_sweep

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
        # an empty mapping merges into the recipe's weights and would silently leave them set
        ({"merge.weights": [{}, {"algebra": 1.0}]}, r"merge.weights would be \{'counting': 1.0\}, not \{\}"),
    ],
)
def test_bad_arms_fail_before_anything_runs(tmp_path, grid, msg):
    with pytest.raises(RecipeError, match=msg):
        run_sweep(TINY, grid, [0], [f"output_root={tmp_path}", "merge.weights={counting: 1.0}"])
    assert not any(tmp_path.iterdir())


def test_seed_keys_must_be_integer_keys(tmp_path):
    with pytest.raises(RecipeError, match="--seed-keys: the recipe has no key sft.sed"):
        expand(TINY, {"rl.lam": [0]}, [0], [], tmp_path, seed_keys=("sft.sed",))


@pytest.mark.slow
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

    # interrupted before an arm started (its folder gone, with the data another arm shared from it):
    # the same command runs only that arm's data stage, and the sharing arm adopts the new one
    import shutil

    donor = folder / "train_problems_per_domain-31_learning_rate-0.001_seed-0"
    shutil.rmtree(donor)
    untouched = {p: p.read_bytes() for p in folder.glob("*per_domain-30*/manifest.json")}
    run_sweep(TINY, grid, [0], overrides, name="lr")
    assert {p: p.read_bytes() for p in folder.glob("*per_domain-30*/manifest.json")} == untouched
    sharer = Manifest(folder / "train_problems_per_domain-31_learning_rate-0.002_seed-0").stage("data")
    assert sharer["shared_from"] == str(donor / "data") and (donor / "data").is_dir()
    assert sharer["output_id"] == Manifest(donor).stage("data")["output_id"]

    # another sweep into the same folder is refused
    with pytest.raises(RecipeError, match=r"holds another sweep \(differs in \['grid'\]\)"):
        run_sweep(TINY, {"sft.learning_rate": [0.003]}, [0], overrides, name="lr")


def test_from_branches_a_run_from_another_runs_completed_stages(tmp_path):
    """--from: the branch shares the donor's data stage (its config is the same), never touches the
    donor's folder, and a stage whose config differs would run in the branch (shown above)."""
    from ssp.launch.runner import run_pipeline

    from .conftest import fast_recipe

    base = fast_recipe(tmp_path, "stages=[data]", "run_name=a")
    run_pipeline(base)
    before = (base.run_dir / "manifest.json").read_bytes()
    branch = fast_recipe(tmp_path, "stages=[data]", "run_name=b", "sft.learning_rate=1e-3")
    run_pipeline(branch, donors=[base.run_dir])
    assert Manifest(branch.run_dir).stage("data")["shared_from"] == str(base.run_dir / "data")
    assert (base.run_dir / "manifest.json").read_bytes() == before
    assert not (branch.run_dir / "data").exists()
    # a sweep branched from the run (ssp sweep --from RUN; benchmarks/mgpo_vs_grpo.py): no arm runs data
    folder = run_sweep(
        TINY,
        {"sft.learning_rate": [0.001, 0.002]},
        [0],
        [f"output_root={tmp_path}", *FAST, "stages=[data]"],
        name="branched",
        donors=[base.run_dir],
    )
    for arm in ("learning_rate-0.001_seed-0", "learning_rate-0.002_seed-0"):
        assert Manifest(folder / arm).stage("data")["shared_from"] == str(base.run_dir / "data")


def test_presets_read_the_recipes_own_values():
    from ssp.config.recipe import load_recipe
    from ssp.launch.sweep import preset_grid

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


def test_the_plan_from_the_recipes_sweep_section_and_the_command_line_winning(tmp_path):
    from ssp.launch.sweep import resolve_plan

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        TINY.read_text() + "\nsweep:\n  grid: {rl.p0: [0.3, 0.5]}\n  presets: [entropy]\n  seeds: [0, 1, 2]\n"
        "  name: mine\n  jobs: 2\n"
    )
    plan = resolve_plan(recipe, [])
    assert plan.grid == {"rl.p0": [0.3, 0.5], "rl.lam": [0.0, 4.0]}  # the preset from the recipe's lam
    assert (plan.seeds, plan.name, plan.jobs, plan.seed_keys) == (
        [0, 1, 2],
        "mine",
        2,
        ("sft.seed", "rl.seed"),
    )
    # --grid (with or without --preset) replaces the recipe's grid and presets; other flags their own key
    plan = resolve_plan(recipe, [], ["sft.seed=1,2"], None, [5], ["rl.seed"], "cli", 1)
    assert plan.grid == {"sft.seed": [1, 2]}
    assert (plan.seeds, plan.name, plan.jobs, plan.seed_keys) == ([5], "cli", 1, ("rl.seed",))
    assert resolve_plan(TINY, ["sweep.presets=[probing]"]).grid == {"probe.enabled": [True, False]}
    with pytest.raises(RecipeError, match=r"sweep.grid.rl.p0: a value is repeated"):
        resolve_plan(recipe, ["sweep.grid={rl.p0: [0.5, 0.5]}", "sweep.presets=[]"])
    with pytest.raises(RecipeError, match="preset entropy: rl.lam is also in the grid"):
        resolve_plan(recipe, ["sweep.grid={rl.lam: [1.0, 2.0]}"])
    with pytest.raises(RecipeError, match="nothing to sweep"):
        resolve_plan(TINY, [])
    with pytest.raises(RecipeError, match=r"sweep.jobs: must be >= 1, got 0"):
        resolve_plan(recipe, ["sweep.jobs=0"])
    with pytest.raises(RecipeError, match=r"sweep.seeds: a seed is repeated"):
        resolve_plan(recipe, ["sweep.seeds=[1,1]"])


@pytest.mark.slow
def test_arms_at_once_share_an_identical_stage_instead_of_both_running_it(tmp_path, capsys):
    """``ssp sweep`` with the plan in the recipe (sweep.grid, sweep.jobs=2): two arms differing only
    in an SFT key start at the same moment as two processes and both reach the data stage with
    the same fingerprint. One runs it, the other waits on the share lock and adopts it. (Without
    the lock both ran it: checked by removing it.) Each arm logs to <sweep>/logs/<arm>.log."""
    from ssp.launch.cli import main

    overrides = [
        f"output_root={tmp_path}",
        *FAST,
        "stages=[data]",
        "sweep.grid={sft.learning_rate: [0.001, 0.002]}",
        "sweep.jobs=2",
        "sweep.name=par",
    ]
    assert main(["sweep", str(TINY), *overrides]) == 0
    folder = tmp_path / "par"
    entries = [Manifest(folder / f"learning_rate-{lr}_seed-0").stage("data") for lr in (0.001, 0.002)]
    assert all(e["status"] == "completed" for e in entries)
    ran = [e for e in entries if not e.get("shared_from")]
    assert len(ran) == 1, entries  # not 2: the second arm did not run the identical stage
    shared = next(e for e in entries if e.get("shared_from"))
    assert shared["outputs"] == ran[0]["outputs"] and shared["cost"]["hours"] == 0.0
    logs = sorted(p.name for p in (folder / "logs").glob("*.log"))
    assert logs == ["learning_rate-0.001_seed-0.log", "learning_rate-0.002_seed-0.log"]
    assert "Sweep: " in capsys.readouterr().out
    # nothing left behind: share locks, run locks, attempt recipes (they used to pile up)
    assert not list(folder.glob(".share/*.lock")) and not list(folder.glob("*/.*.lock"))
    assert not list(folder.glob("*/.attempts/*")) and not list(folder.glob("*/.recipe.yaml.tmp-*"))


def test_concurrent_arms_that_want_more_gpus_than_they_get_are_refused(tmp_path, monkeypatch):
    from ssp.launch.sweep_jobs import gpu_slots

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    arms = [
        (a.name, a.recipe)
        for a in expand(TINY, {"rl.lam": [0, 4.0]}, [0], ["sft.nproc_per_node=2"], tmp_path)
    ]
    assert gpu_slots(2, None, arms) == ["0,1", "2,3"]
    one = [(a.name, a.recipe) for a in expand(TINY, {"rl.lam": [0]}, [0], [], tmp_path)]
    assert gpu_slots(4, 1, one) == ["0", "1", "2", "3"]
    with pytest.raises(RecipeError, match=r"sft.nproc_per_node=2 but each of 4 concurrent arms gets 1 GPUs"):
        gpu_slots(4, None, arms)
    with pytest.raises(RecipeError, match="--jobs 3 x 2 GPUs per arm: this machine shows 4 GPUs"):
        gpu_slots(3, 2, arms)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu_slots(2, None, arms) == [None, None]  # CPU: no split
