"""elistimator_tracking: a training object for TF1-style graph models, tracked in MLflow.

Importing the package sets TensorFlow's environment defaults (``_env.py``) but imports
neither TensorFlow nor MLflow: ``Elistimator`` and the specs load on first use. The
listener interface (``Listener``, ``EarlyStopping``), the selection policy (``Criterion``,
``KeepBest``) and every error and warning are light and import at once.
"""

import importlib
from typing import Any

from . import _env  # noqa: F401  (before anything imports TensorFlow)
from ._version import __version__
from .checkpoints import KeepBest
from .criterion import Criterion
from .datasets import named_input
from .early_stopping import EarlyStopping
from .errors import (
    AliasKeptWarning,
    CheckpointNotFoundError,
    CheckpointsDroppedWarning,
    DivergedError,
    ElistimatorError,
    ElistimatorWarning,
    InvalidTypeError,
    InvalidValueError,
    MissingDependencyError,
    ModelDirectoryBusy,
    ModelDirectoryChanged,
    ModelDirectoryError,
    NotFoundError,
    NotSupportedError,
    PathExistsError,
    StoreNotFoundError,
    TrackingError,
    TrackingWarning,
    TrainingStopped,
    UnsafeModelError,
    UsageError,
    WorkerLostError,
)
from .listeners import Listener, RunContext, SavedCheckpoint

_LAZY = {"Elistimator": "elistimator", "TrainSpec": "specs", "EvaluationSpec": "specs", "PredictSpec": "specs"}

__all__ = [
    "Elistimator",
    "TrainSpec",
    "EvaluationSpec",
    "PredictSpec",
    "named_input",
    "Listener",
    "RunContext",
    "SavedCheckpoint",
    "EarlyStopping",
    "Criterion",
    "KeepBest",
    # every public error and warning (errors.py; tests/test_errors.py checks that none is missing)
    "AliasKeptWarning",
    "CheckpointNotFoundError",
    "CheckpointsDroppedWarning",
    "DivergedError",
    "ElistimatorError",
    "ElistimatorWarning",
    "InvalidTypeError",
    "InvalidValueError",
    "MissingDependencyError",
    "ModelDirectoryBusy",
    "ModelDirectoryChanged",
    "ModelDirectoryError",
    "NotFoundError",
    "NotSupportedError",
    "PathExistsError",
    "StoreNotFoundError",
    "TrackingError",
    "TrackingWarning",
    "TrainingStopped",
    "UnsafeModelError",
    "UsageError",
    "WorkerLostError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """``Elistimator`` and the specs, imported (with TensorFlow) when first asked for."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
