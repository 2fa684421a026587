"""Tracking in MLflow, layered (docs/architecture.md):

- ``names`` (every MLflow name) and ``run`` (the run record) at the bottom, then ``base`` (the
  tracker interface, no dependencies);
- ``listener`` (the core's moments -> the tracker) over ``mlflow_tracker`` (the thin front of the
  journal), over ``journal/`` (operations, spool, worker, delivery, sync);
- the remote side: ``resolve`` (``runs:/`` and ``models:/``), ``logged_models``, ``registry``,
  ``pyfunc_model``, ``schemas``.

Importing this package imports neither mlflow nor the journal: ``sync`` loads on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import AliasKeptWarning, TrackingWarning
from .base import NullTracker, Tracker
from .names import is_remote_source
from .run import RunRecord
from .ui import command, registered, ui_hint

__all__ = [
    "Tracker",
    "NullTracker",
    "RunRecord",
    "TrackingWarning",
    "AliasKeptWarning",
    "sync",
    "ui_hint",
    "command",
    "registered",
    "is_remote_source",
]


def __getattr__(name: str) -> Any:
    """``sync`` (``journal/sync.py``), imported when first asked for."""
    if name != "sync":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = importlib.import_module(".journal.sync", __name__).sync
    globals()[name] = value
    return value
