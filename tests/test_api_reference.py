"""The API reference (docs/api/, mkdocstrings) holds every public name: each name in the ``__all__`` of
a public module has a ``::: <path>`` directive of its own, by the name it is imported as or where it
is defined, or belongs to a module whose directive renders its members. ``mkdocs build --strict``
fails on a directive that names nothing; this fails on a public name no directive names."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType

import pytest

API = Path(__file__).resolve().parents[1] / "docs" / "api"
PUBLIC_MODULES = [
    "elistimator_tracking",
    "elistimator_tracking.tracking",
    "elistimator_tracking.estimator",
    "elistimator_tracking.sweep",
]
DIRECTIVE = re.compile(r"^::: (?P<path>[\w.]+)(?P<options>(?:\n[ \t]+\S[^\n]*)*)", re.M)


def rendered_members(module: ModuleType) -> set[str]:
    """What a module's directive renders: its ``__all__``, else the public names it defines."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [name for name, value in vars(module).items() if where_defined(value) == f"{module.__name__}.{name}"]
    return {f"{module.__name__}.{name}" for name in names if not name.startswith("_")}


@pytest.fixture(scope="module")
def documented() -> set[str]:
    """Every path a directive of docs/api/ names, and the members its module directives render."""
    found: set[str] = set()
    for page in sorted(API.glob("*.md")):
        for directive in DIRECTIVE.finditer(page.read_text(encoding="utf-8")):
            path = directive["path"]
            found.add(path)
            try:
                module = importlib.import_module(path)
            except ImportError:
                continue  # a class or function
            if "members: false" not in directive["options"]:
                found |= rendered_members(module)
    return found


def where_defined(value: object) -> str | None:
    module, name = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    return f"{module}.{name}" if module and name else None


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_is_in_the_api_reference(module_name, documented):
    module = importlib.import_module(module_name)
    missing = [
        name
        for name in module.__all__
        if not name.startswith("__")
        and f"{module_name}.{name}" not in documented
        and where_defined(getattr(module, name)) not in documented
    ]
    assert not missing, f"public names of {module_name} with no page in docs/api/: {missing}"
