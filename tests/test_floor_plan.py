"""The floor plan of docs/architecture.md, held against the code's imports: a package imports only
packages on lower floors (or its own), and no stage file imports another stage's file.

Read from the source with ``ast`` (every import, module level or inside a function), so a new
import that runs upward fails here, naming the file, the line and the floors."""

import ast

import pytest

from .conftest import ROOT

FLOORS = [
    ["core"],
    ["reward"],
    ["sampling"],
    ["data_pipeline", "train", "evaluation"],
    ["config"],
    ["stages"],
    ["launch"],
]
FLOOR = {pkg: i for i, pkgs in enumerate(FLOORS) for pkg in pkgs}


def _raw_imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []


def _imports(path):
    """Every import of ours with the ``ssp.`` namespace taken off (``ssp.core.x`` -> ``core.x``)."""
    for line, module, names in _raw_imports(path):
        yield line, module.removeprefix("ssp."), names


def _project_files():
    return [p for pkg in FLOOR for p in sorted((ROOT / pkg).rglob("*.py"))]


def test_every_package_is_on_a_floor():
    top = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert top - {"tests"} == set(FLOOR), "a new package needs a floor here and in docs/architecture.md"


def _violations():
    found = []
    for path in _project_files():
        own = path.relative_to(ROOT).parts[0]
        for line, module, _ in _imports(path):
            target = module.split(".")[0]
            if target not in FLOOR or target == own:
                continue
            if FLOOR[target] > FLOOR[own]:
                found.append(
                    f"{path.relative_to(ROOT)}:{line} imports {module} (floor {FLOOR[target]} > {FLOOR[own]})"
                )
            if FLOOR[target] == FLOOR[own]:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}, a package on its own floor")
    return found


def test_no_import_runs_upward_or_sideways():
    assert _violations() == []


@pytest.mark.parametrize("stage", ["data", "sft", "probe", "merge", "rl", "eval"])
def test_a_stage_imports_no_other_stage(stage):
    path = ROOT / "stages" / f"{stage}.py"
    others = {f"stages.{s}" for s in ("data", "sft", "probe", "merge", "rl", "eval")} - {f"stages.{stage}"}
    bad = [
        f"{line}: {module} {names}"
        for line, module, names in _imports(path)
        if module in others or (module == "stages" and set(names) & {o.split(".")[1] for o in others})
    ]
    assert bad == []


def _unnamespaced(roots):
    """Imports of one of our packages by its bare name (``from core.x import``): they work only from
    the checkout's folder, and there a researcher's own ``config.py`` or ``train.py`` shadows ours."""
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if ".venv" in path.parts:
                continue
            for line, module, _ in _raw_imports(path):
                if module.split(".")[0] in FLOOR:
                    found.append(f"{path.relative_to(root)}:{line} imports {module} (write ssp.{module})")
    return found


def test_every_import_of_ours_goes_through_the_ssp_namespace():
    roots = [ROOT / d for d in (*FLOOR, "tests", "benchmarks")]
    assert _unnamespaced(roots) == []


def test_the_namespace_check_sees_a_bare_import(tmp_path):
    """Broken on purpose: ``from config.recipe import ...`` (bare) must be reported, ``ssp.`` not."""
    (tmp_path / "m.py").write_text("from config.recipe import load_recipe\nimport ssp.core.corpus\n")
    assert _unnamespaced([tmp_path]) == ["m.py:1 imports config.recipe (write ssp.config.recipe)"]


def test_the_packages_installed_are_the_folders_on_the_floor_plan():
    """pyproject.toml lists ssp's packages one by one (package-dir maps ssp to the root): a new
    folder with an __init__.py must be listed there, or installing ssp leaves it out."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        "ssp." + ".".join(p.parent.relative_to(ROOT).parts)
        for pkg in FLOOR
        for p in (ROOT / pkg).rglob("__init__.py")
    }
    assert listed == on_disk


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """Broken on purpose: a core file that imports launch must be reported."""
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "bad.py").write_text("from ssp.launch.runner import run_stage\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    assert _violations() == ["core/bad.py:1 imports launch.runner (floor 6 > 0)"]


@pytest.mark.slow
def test_starting_ssp_imports_no_training_library():
    """Every `ssp` command and torchrun worker loads the runner, the stage table and the recipe
    before any work: none of them may pull in transformers, TRL, peft, vLLM, datasets or DeepSpeed
    at import (they once did: start-up went from 2.2 s to 6.6 s, docs/benchmarks.md)."""
    import subprocess
    import sys

    code = (
        "import sys, ssp.launch.cli, ssp.launch.runner, ssp.launch.worker, ssp.config.recipe\n"
        "print(sorted(m for m in ('transformers', 'trl', 'peft', 'vllm', 'datasets', 'deepspeed') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.slow
def test_ssp_runs_from_a_research_folder_holding_its_own_config_and_train_modules(tmp_path):
    """The folder a researcher runs from holds ``config.py``, ``train.py``, ``core.py`` and
    ``launch.py`` of their own (here: each stops the process on import). ``python -m`` puts that
    folder first on sys.path; with bare package names ours were shadowed, with ``ssp.`` none is."""
    import subprocess
    import sys

    from .conftest import FAST, TINY

    for name in ("config", "train", "core", "launch", "stages", "reward"):
        (tmp_path / f"{name}.py").write_text(
            f"raise SystemExit('the researcher\\'s own {name}.py was imported')\n"
        )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssp.launch.cli",
            "stage",
            "data",
            str(TINY),
            f"output_root={tmp_path / 'runs'}",
            *FAST,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "runs" / "tiny" / "data" / "sft.jsonl").is_file()
