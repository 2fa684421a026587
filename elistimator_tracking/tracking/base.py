"""The tracker interface the core talks to, and its null implementation.

The core (``elistimator.py``) never imports mlflow: it calls these few methods. The
MLflow implementation (``tracking/mlflow_tracker.py``) is imported only when tracking
is on, so ``tracking=False`` works without touching mlflow at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

RUN_STATUSES = ("FINISHED", "FAILED", "KILLED")


class TrackingWarning(UserWarning):
    """Tracking is behind, or something is not being tracked (training goes on)."""


class Tracker:
    """What the Elistimator tells a tracking backend. Every method returns at once.

    A tracker never raises into the training loop: what it cannot deliver now it keeps
    and delivers later. ``start`` opens (or resumes) a run; the others log to it.
    """

    #: False for the null tracker: the Elistimator then skips preparing artifacts.
    active = True

    def start(self, spool_root: Path, experiment: str, run_name: Optional[str], tags: Mapping[str, str],
              resume: Optional[Mapping[str, Any]] = None) -> None:
        """Open a run, or resume the run ``resume`` describes (a record from ``describe()``).

        ``spool_root`` is where undelivered work is kept (inside the model directory).
        """
        raise NotImplementedError

    def log_params(self, params: Mapping[str, str]) -> None:
        raise NotImplementedError

    def set_tags(self, tags: Mapping[str, str]) -> None:
        raise NotImplementedError

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """All of ``metrics`` at global ``step``, delivered as one batch."""
        raise NotImplementedError

    def outbox(self, name: str) -> Path:
        """A fresh directory to fill and hand to ``log_artifacts`` (it is removed once delivered)."""
        raise NotImplementedError

    def log_artifacts(self, directory: Path, artifact_path: str) -> None:
        """Upload the files of an ``outbox`` directory under ``artifact_path`` of the run."""
        raise NotImplementedError

    def finish(self, status: str, error: Optional[str] = None) -> None:
        """End the run with ``status`` (FINISHED, FAILED or KILLED) and wait, bounded, for delivery."""
        raise NotImplementedError

    def describe(self) -> Optional[Dict[str, Any]]:
        """What the model directory records to resume this run later (None when not tracking)."""
        raise NotImplementedError

    def register(self, step: int, model_dir: Path, name: str, alias: Optional[str],
                 tags: Mapping[str, str], run_id: Optional[str] = None) -> str:
        """Register ``model_dir`` (one checkpoint) as a new version of model ``name``; return the version.

        The version belongs to this tracker's run, or to ``run_id`` when no run was started
        (a model loaded with ``from_disk`` names its run). Unlike the logging calls this one
        is synchronous and raises: the caller asked for it.
        """
        raise NotImplementedError


class NullTracker(Tracker):
    """Tracking off: every call does nothing."""

    active = False

    def start(self, spool_root, experiment, run_name, tags, resume=None) -> None:
        pass

    def log_params(self, params) -> None:
        pass

    def set_tags(self, tags) -> None:
        pass

    def log_metrics(self, metrics, step) -> None:
        pass

    def outbox(self, name: str) -> Path:
        raise RuntimeError("the null tracker has no outbox")

    def log_artifacts(self, directory, artifact_path) -> None:
        pass

    def finish(self, status, error=None) -> None:
        pass

    def describe(self) -> None:
        return None

    def register(self, step, model_dir, name, alias, tags, run_id=None) -> str:
        raise RuntimeError("registering a model needs tracking: create the Elistimator with tracking=True "
                           "(or a tracking URI)")


def make_tracker(tracking: Union[bool, str, Tracker], recorded_uri: Optional[str] = None) -> Tracker:
    """The tracker for ``Elistimator(tracking=...)``.

    ``True``: MLflow at the URI the model directory recorded (when resuming), else
    ``MLFLOW_TRACKING_URI``, else MLflow's default local store. A string: that URI.
    A ``Tracker``: itself. ``False``: no tracking.
    """
    if isinstance(tracking, Tracker):
        return tracking
    if tracking is False:
        return NullTracker()
    if tracking is True:
        uri = recorded_uri or os.environ.get("MLFLOW_TRACKING_URI") or None
    elif isinstance(tracking, (str, os.PathLike)) and str(tracking).strip():
        uri = os.fspath(tracking)
    else:
        raise TypeError(f"tracking must be True, False, a tracking URI string or a Tracker object, "
                        f"got {tracking!r}")
    from .mlflow_tracker import MlflowTracker  # the one place mlflow gets imported
    return MlflowTracker(uri)
