"""Every recipe under recipes/ loads and validates; recipe errors name the key path."""

from pathlib import Path

import pytest

from ssp.config.recipe import STAGE_ORDER, load_recipe
from ssp.core.errors import RecipeError

from .conftest import ROOT, TINY

RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


def test_there_are_recipes():
    assert TINY in RECIPES and len(RECIPES) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_loads_and_validates(path: Path):
    recipe = load_recipe(path)
    assert recipe.stages and all(s in STAGE_ORDER for s in recipe.stages)
    if recipe.sft.deepspeed:
        assert Path(recipe.sft.deepspeed).is_file(), (
            f"{path.name}: deepspeed config {recipe.sft.deepspeed} missing"
        )


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_reads_like_a_notebook_page(path: Path):
    """Each recipe opens with a comment block: purpose, the exact launch command, an override example."""
    head = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        head.append(line)
    text = "\n".join(head)
    assert len(head) >= 5, f"{path.name} has no opening comment block"
    assert "Launch" in text and ("ssp run" in text or "torchrun" in text), f"{path.name}: no launch command"
    assert "=" in text and "override" in text.lower(), f"{path.name}: no override example"


def test_overrides_apply_with_types():
    r = load_recipe(TINY, ["sft.learning_rate=3e-4", "data.domains=[algebra,counting]", "sft.bf16=false"])
    assert r.sft.learning_rate == pytest.approx(3e-4)
    assert r.data.domains == ["algebra", "counting"]
    assert r.sft.bf16 is False


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["sft.lerning_rate=1e-3"], "sft.lerning_rate"),  # misspelt key
        (["sft.max_length=long"], "sft.max_length"),  # wrong type
        (["sft.learning_rate=-1"], "sft.learning_rate: must be > 0"),  # __post_init__, full path
        (["tiny_model.num_attention_heads=3"], "tiny_model.num_attention_heads"),
        (["data.domains=[geometry]"], "data.domains: unknown tiny-task domains ['geometry']"),
        (["data.source=files"], "data.train_file: is required"),
        (["stages=[sft,data]"], "stages: must follow the pipeline order"),
        (["stages=[data,rlhf]"], "stages: unknown stages ['rlhf']"),
        (["nonsense"], "not of the form key=value"),
    ],
)
def test_recipe_errors_name_the_key(overrides, expected):
    with pytest.raises(RecipeError, match=None) as info:
        load_recipe(TINY, overrides)
    assert expected in str(info.value)


def test_misspelt_key_in_yaml_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run_name: x\nsft:\n  learning_rat: 0.1\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(bad)
    assert str(bad) in str(info.value) and "sft.learning_rat" in str(info.value)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_recipe_reference_is_up_to_date():
    """docs/recipe_reference.md is generated from the schema's docstrings; regenerate when it differs."""
    import contextlib
    import io

    from ssp.launch.recipe_doc import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main()
    committed = (ROOT / "docs" / "recipe_reference.md").read_text()
    assert committed == buf.getvalue(), "run: python -m ssp.launch.recipe_doc > docs/recipe_reference.md"


def test_overrides_reach_into_lists():
    r = load_recipe(TINY, ["rl.phases[0].max_steps=7", "rl.phases[0].trl={beta: 0.04}"])
    assert r.rl.phases[0].max_steps == 7
    assert r.rl.phases[0].trl == {
        "loss_type": "dapo",
        "epsilon": 0.2,
        "beta": 0.04,
    }  # merged into the recipe's
    with pytest.raises(RecipeError, match=r"rl.phases\[0\].max_stepz: Key 'max_stepz' not in 'RLPhase'"):
        load_recipe(TINY, ["rl.phases[0].max_stepz=7"])


def test_a_tilde_override_puts_the_schema_default_back_instead_of_merging():
    """`probe.reward={name: math_correctness}` merges into the demo's by_domain reward and keeps its
    code options (math_correctness then refused `domains`); `~probe.reward` replaces it whole."""
    merged = load_recipe(TINY, ["probe.reward={name: math_correctness}"])
    assert merged.probe.reward.name == "math_correctness" and "domains" in merged.probe.reward.options
    reset = load_recipe(TINY, ["~probe.reward", "probe.reward.weight=2.0"])
    assert (reset.probe.reward.name, reset.probe.reward.options, reset.probe.reward.weight) == (
        "math_correctness",
        {},
        2.0,
    )
    assert load_recipe(TINY, ["~rl.phases"]).rl.phases[0].domains == []  # the schema's one math phase
    with pytest.raises(RecipeError, match=r"'~rl.phases\[1\]': rl.phases\[1\] has no default to go back to"):
        load_recipe(TINY, ["~rl.phases[1]"])
    with pytest.raises(RecipeError, match=r"'~probe.rewardz': probe.rewardz is not a key of the recipe"):
        load_recipe(TINY, ["~probe.rewardz"])
    for bad in ("~", "~ ", "~rl.phases[a]"):  # each a one-line RecipeError, not a traceback
        with pytest.raises(RecipeError, match=r"override '~"):
            load_recipe(TINY, [bad])
    from ssp.launch.cli import parse

    args = parse(["run", str(TINY), "--force", "sft", "~probe.reward"])  # after an option too
    assert args.overrides == ["~probe.reward"]


def test_an_override_error_names_the_command_line_not_the_file():
    """A bad value typed on the command line is reported as that override; a bad value in the file
    names the file."""
    with pytest.raises(RecipeError) as info:
        load_recipe(TINY, ["rl.phases[0].max_steps=0"])
    assert str(info.value).startswith("command-line override 'rl.phases[0].max_steps=0': ")
    assert "rl.phases[0].max_steps: must be > 0" in str(info.value) and str(TINY) not in str(info.value)


def test_a_file_error_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sft:\n  learning_rate: -1\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(bad, ["rl.lam=1"])  # an unrelated override does not take the blame
    assert str(info.value).startswith(f"{bad}: sft.learning_rate: must be > 0")


@pytest.mark.slow
def test_version_flag():
    import subprocess

    from .conftest import ssp_cmd

    out = subprocess.run(ssp_cmd("--version"), capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip().startswith("ssp 0."), out.stdout + out.stderr
