"""A griffe extension for the API reference (mkdocs.yml): the options' docs, written once in ``settings.Settings``.

Each option of ``Elistimator(...)`` and ``Elistimator.from_disk(...)`` is declared once, with its
default, its check and its doc: ``option(default, check, "doc")`` in ``elistimator_tracking/settings.py``.
The signatures spell the options out for IDEs; their docstrings name them and point to Settings. This
extension reads the declarations (statically, like the rest of the reference: nothing is imported) and
adds an "Other Parameters" section to those two docstrings, one entry per option the signature takes,
so the reference documents every parameter without the text being written twice.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import griffe

#: where the options are taken, as (module, object path) in the package
TAKERS = (("elistimator", "Elistimator"), ("checkpoint_api", "CheckpointMethods.from_disk"))


def declared_options(source: Path) -> dict[str, str]:
    """``{option: doc}`` from the ``option(default, check, doc)`` fields of ``class Settings``."""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    (settings,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Settings"]
    docs = {}
    for field in settings.body:
        call = field.value if isinstance(field, ast.AnnAssign) else None
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "option":
            docs[field.target.id] = ast.literal_eval(call.args[2])  # type: ignore[union-attr]
    return docs


class SettingsDocs(griffe.Extension):
    """Adds the declared options' docs to the docstrings of the signatures that take them."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name != "elistimator_tracking":
            return
        options = declared_options(Path(pkg["settings"].filepath))
        for module, path in TAKERS:
            target = pkg[module]
            for part in path.split("."):
                target = target[part]
            function = target if isinstance(target, griffe.Function) else target["__init__"]
            docstring = target.docstring
            taken = [p.name for p in function.parameters if p.name in options]
            documented = {name for name in taken if f"\n        {name}: " in docstring.value}  # in its Args
            lines = [f"    {name}: {_markdown(options[name])}." for name in taken if name not in documented]
            docstring.value = f"{docstring.value.rstrip()}\n\nOther Parameters:\n" + "\n".join(lines)


def _markdown(text: str) -> str:
    """An option's doc as Markdown text: ``system/<metric>`` is not an HTML tag."""
    return text.replace("<", "&lt;").replace(">", "&gt;")
