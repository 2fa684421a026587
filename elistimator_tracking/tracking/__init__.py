"""Tracking in MLflow: the tracker interface (``base``), the run listener, the MLflow tracker and
its durable journal (``spool``), and the remote side (``resolve``, ``registry``, ``sync``).

Importing this package does not import mlflow; the modules that need it import it.
"""

from __future__ import annotations

from .base import AliasKeptWarning, NullTracker, Tracker, TrackingWarning
from .layout import is_remote_source
from .sync import sync
from .ui import command, ui_hint

__all__ = [
    "Tracker",
    "NullTracker",
    "TrackingWarning",
    "AliasKeptWarning",
    "sync",
    "ui_hint",
    "command",
    "is_remote_source",
]
