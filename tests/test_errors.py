"""One error tree: every error the package raises on purpose is an ``ElistimatorError`` (and the
built-in type callers caught before), and every public error and warning class is exported."""

from __future__ import annotations

import ast
import builtins
import inspect
from pathlib import Path

import pytest

import elistimator_tracking
from elistimator_tracking import errors

PACKAGE = Path(elistimator_tracking.__file__).parent
#: built-in raises that are protocol, not errors of ours: abstract methods, a module's __getattr__,
#: the SIGTERM handler's exit, the delivery thread's refused connection (a store failure it retries itself)
PROTOCOL = {"NotImplementedError", "AttributeError", "SystemExit", "StopIteration", "ConnectionRefusedError"}


def error_classes():
    return [
        value
        for value in vars(errors).values()
        if inspect.isclass(value) and issubclass(value, (Exception, Warning)) and value.__module__ == errors.__name__
    ]


def test_every_error_and_warning_class_is_exported_from_the_package():
    exported = set(elistimator_tracking.__all__)
    missing = sorted(cls.__name__ for cls in error_classes() if cls.__name__ not in exported)
    assert not missing
    for cls in error_classes():
        assert getattr(elistimator_tracking, cls.__name__) is cls


def test_the_errors_page_has_a_row_for_every_error_and_warning():
    page = (PACKAGE.parent / "docs" / "errors.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().split()[0].strip("`") for line in page.splitlines() if line.startswith("| `")}
    assert sorted(cls.__name__ for cls in error_classes() if cls.__name__ not in rows) == []


def test_every_error_is_an_elistimator_error_and_every_warning_an_elistimator_warning():
    for cls in error_classes():
        base = errors.ElistimatorWarning if issubclass(cls, Warning) else errors.ElistimatorError
        assert issubclass(cls, base), cls
        assert cls.__doc__, f"{cls.__name__} says when it is raised"


@pytest.mark.parametrize(
    "cls, builtin",
    [
        (errors.InvalidValueError, ValueError),
        (errors.InvalidTypeError, TypeError),
        (errors.UsageError, RuntimeError),
        (errors.NotFoundError, LookupError),
        (errors.CheckpointNotFoundError, LookupError),
        (errors.ModelDirectoryError, ValueError),
        (errors.ModelDirectoryBusy, ValueError),
        (errors.TrackingError, RuntimeError),
        (errors.StoreNotFoundError, FileNotFoundError),
        (errors.PathExistsError, FileExistsError),
        (errors.DivergedError, FloatingPointError),
        (errors.NotSupportedError, NotImplementedError),
        (errors.WorkerLostError, RuntimeError),
        (errors.MissingDependencyError, ImportError),
        (errors.ModelDirectoryChanged, ValueError),
        (errors.UnsafeModelError, ValueError),
        (errors.AliasKeptWarning, errors.TrackingWarning),
    ],
)
def test_each_error_is_still_the_built_in_type_callers_catch(cls, builtin):
    assert issubclass(cls, builtin)


def raised_names(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name):
                yield node.lineno, target.id


def test_the_package_raises_no_bare_built_in_error():
    bare = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, name in raised_names(ast.parse(path.read_text(encoding="utf-8"))):
            value = getattr(builtins, name, None)
            if inspect.isclass(value) and issubclass(value, BaseException) and name not in PROTOCOL:
                bare.append(f"{path.relative_to(PACKAGE)}:{line} raises {name}")
    assert not bare, "raise an ElistimatorError subclass (errors.py) instead:\n" + "\n".join(bare)
