"""Generate docs/recipe_reference.md, the key reference, from the schema's field docstrings.

    python -m ssp.launch.recipe_doc > docs/recipe_reference.md

Attribute docstrings are not kept at run time, so they are read from the source with ``ast``.
A test checks that the committed reference matches the schema.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing

from ssp.config.recipe import Recipe
from ssp.core.tables import markdown_table


def _field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of ``cls`` and of the dataclasses it inherits fields from."""
    docs = {}
    for base in reversed([c for c in cls.__mro__ if dataclasses.is_dataclass(c)]):
        docs.update(_own_field_docs(base))
    return docs


def _own_field_docs(cls: type) -> dict[str, str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
        ):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    value = f.default_factory()
    return "(section)" if dataclasses.is_dataclass(value) else repr(value)


def reference(cls: type = Recipe, prefix: str = "") -> list[str]:
    docs = _field_docs(cls)
    title = prefix.rstrip(".") or "top level"
    lines = [
        f"### `{title}`",
        "",
        (inspect.getdoc(cls) or "").split("\n\n")[0],
        "",
    ]
    sections, rows = [], []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        default = _default(f)
        if default == "(section)":
            sections.append((type(f.default_factory()), f"{prefix}{f.name}."))
        item = typing.get_args(hints[f.name])
        if typing.get_origin(hints[f.name]) is list and item and dataclasses.is_dataclass(item[0]):
            sections.append((item[0], f"{prefix}{f.name}[*]."))  # each entry of a list of sections
        rows.append([f"`{prefix}{f.name}`", f"`{default}`", docs.get(f.name, "").replace("|", "/")])
    lines += [markdown_table(["key", "default", "meaning"], rows), ""]
    for sub, sub_prefix in sections:
        lines += reference(sub, sub_prefix)
    return lines


def main() -> None:
    print(
        "\n".join(
            [
                "# Recipe key reference",
                "",
                "Generated from the schema (`python -m ssp.launch.recipe_doc`); do not edit by hand.",
                "",
                *reference(),
            ]
        )
    )


if __name__ == "__main__":
    main()
