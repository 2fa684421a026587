"""Tracking: the tracker interface, its null and MLflow implementations, the offline spool."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Union

from .base import NullTracker, Tracker, TrackingWarning, make_tracker
from .spool import SPOOL_DIR, spools_in

__all__ = ["Tracker", "NullTracker", "TrackingWarning", "make_tracker", "sync", "ui_hint", "is_remote_source",
           "resolve_source", "fetch_run_checkpoint"]


def is_remote_source(source: object) -> bool:
    """``runs:/...`` or ``models:/...`` rather than a local model directory."""
    return isinstance(source, str) and source.startswith(("runs:/", "models:/"))


def resolve_source(source: str, checkpoint, metric: str, mode: str, cache_dir=None, tracking_uri=None):
    """A ``runs:/`` or ``models:/`` source as ``(local model directory, checkpoint to load)``."""
    from .resolve import resolve_source as resolve
    return resolve(source, checkpoint, metric, mode, cache_dir, tracking_uri)


def fetch_run_checkpoint(tracking_uri: str, run_id: str, step: int, cache_dir=None) -> Path:
    """The checkpoint a run logged at ``step``, downloaded (cached) and verified."""
    from .resolve import RunCheckpoints
    return RunCheckpoints(run_id, tracking_uri).download(step, cache_dir)


def ui_hint(tracking_uri: str) -> str:
    """The command (or address) that opens the MLflow UI on ``tracking_uri``."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri} in a browser"
    return f"mlflow ui --backend-store-uri {tracking_uri}   (then open http://127.0.0.1:5000)"


def sync(model_dir: Union[str, os.PathLike], tracking_uri: Optional[str] = None,
         timeout: float = 120.0) -> Dict[str, int]:
    """Deliver the tracking work a model directory kept while its store did not answer.

    Returns ``{tracking_uri: operations still pending}`` (all zeros when everything
    arrived). ``tracking_uri`` sends the work to another store than the one recorded,
    for example after a typo in the URI.
    """
    from .mlflow_tracker import MlflowTracker
    root = Path(model_dir).expanduser() / SPOOL_DIR
    if not root.is_dir():
        raise FileNotFoundError(f"{str(Path(model_dir))!r} has no tracking spool ({SPOOL_DIR}/): nothing to sync")
    left = {}
    for spool in spools_in(root):
        tracker = MlflowTracker(tracking_uri or spool.tracking_uri)
        left[tracker.tracking_uri] = tracker.deliver_spool(spool, timeout)
    return left
