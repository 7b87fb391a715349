"""The commands and paths the docs quote exist and parse: a newcomer follows them literally.

Every ``ssp ...`` command in a fenced block or inline code of README.md and docs/*.md is parsed by
the CLI's own argument parser, its recipe file must exist, and its ``key=value`` overrides must
load into that recipe (unknown keys and bad values are refused as ``ssp`` would refuse them).
Every relative link and every quoted repository path (``recipes/...``, ``docs/...``,
``benchmarks/...``, ``tests/...``) must exist. Placeholders (RECIPE, runs/<name>, ...) and
run-time outputs (runs/...) are not files in a fresh clone and are left alone."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from ssp.config.recipe import load_recipe
from ssp.core.errors import RecipeError
from ssp.launch.cli import parse

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDER = re.compile(r"[A-Z]{3,}|<|\.\.\.|\$|\{[^}]*\}\.|/path/")


def _commands(text: str) -> list[tuple[int, str]]:
    """(1-based line, command) of every ``ssp`` command: fenced lines, and inline code."""
    out, fenced, pending = [], False, ""
    for i, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            cmd = (
                (pending + " " + line.split(" #")[0].strip()).strip()
                if pending
                else line.split(" #")[0].strip()
            )
            if cmd.endswith("\\"):
                pending = cmd[:-1]
                continue
            pending = ""
            if cmd.startswith("ssp "):
                out.append((i, cmd))
        else:
            # inline code: a whole command (it names a recipe), not a mention such as `ssp run`
            out += [(i, m) for m in re.findall(r"`(ssp [^`]+)`", line) if ".yaml" in m]
    return out


def _all_commands():
    return [(doc, line, cmd) for doc in DOCS for line, cmd in _commands(doc.read_text())]


def test_the_docs_quote_commands():
    assert len(_all_commands()) > 40  # the scan finds them (README, quickstart, ablations, ...)


@pytest.mark.parametrize(
    "doc,line,cmd", _all_commands(), ids=lambda v: v.name if isinstance(v, Path) else str(v)[:60]
)
def test_a_quoted_command_parses_and_its_recipe_loads(doc, line, cmd):
    where = f"{doc.relative_to(ROOT)}:{line}: {cmd}"
    if PLACEHOLDER.search(cmd.replace("[...]", "")):
        pytest.skip("a placeholder, not a literal command")
    # an optional argument shown in brackets (`ssp doctor [RECIPE]`) is tried as given
    argv = [
        a[1:-1] if a.startswith("[") and a.endswith("]") and "=" not in a else a for a in shlex.split(cmd)[1:]
    ]
    try:
        args = parse(argv)
    except SystemExit as err:
        if err.code == 0:  # --help / --version
            return
        pytest.fail(f"{where}: ssp refuses these arguments")
    recipe = getattr(args, "recipe", None)
    if not recipe or str(recipe).startswith("runs/"):
        return
    assert (ROOT / recipe).is_file(), f"{where}: no recipe file {recipe}"
    overrides = [o for o in getattr(args, "overrides", []) or [] if "=" in o or o.startswith("~")]
    try:
        load_recipe(ROOT / recipe, overrides)
    except RecipeError as err:
        pytest.fail(f"{where}: {err}")


_PATH = re.compile(
    r"(?<![\w/.-])((?:recipes|docs|benchmarks|tests|data_pipeline|launch|stages|train|reward|sampling|evaluation|core|config)/[\w./-]+\w)"
)


def test_quoted_paths_and_links_exist():
    missing = []
    for doc in DOCS:
        for i, line in enumerate(doc.read_text().splitlines(), 1):
            links = [
                m
                for m in re.findall(r"\]\(([^)#\s]+)", line)
                if "://" not in m and not m.startswith("mailto:")
            ]
            for target in links:
                if not (doc.parent / target).exists():
                    missing.append(f"{doc.relative_to(ROOT)}:{i}: link {target}")
            for path in _PATH.findall(line):
                # a file (an extension) or a folder (a trailing /); W&B keys like train/loss are neither
                if (
                    PLACEHOLDER.search(path)
                    or "*" in path
                    or not re.search(r"\.(py|md|yaml|json|jsonl|sh|txt)$", path)
                ):
                    continue
                if not (ROOT / path).exists() and not (ROOT / path.rstrip(".")).exists():
                    missing.append(f"{doc.relative_to(ROOT)}:{i}: path {path}")
    assert not missing, "\n".join(missing)
