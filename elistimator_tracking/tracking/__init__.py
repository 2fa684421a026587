"""Tracking: the tracker interface, its null and MLflow implementations, the offline spool."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Union

from .base import NullTracker, Tracker, TrackingWarning, make_tracker
from .spool import SPOOL_DIR, spools_in

__all__ = ["Tracker", "NullTracker", "TrackingWarning", "make_tracker", "sync"]


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
