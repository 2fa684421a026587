"""Tracking: the tracker interface, its null and MLflow implementations, the offline spool."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Dict, Optional, Union

from .base import NullTracker, Tracker, TrackingWarning, make_tracker
from .spool import SPOOL_DIR, spools_in

__all__ = ["Tracker", "NullTracker", "TrackingWarning", "make_tracker", "sync", "ui_hint", "is_remote_source",
           "resolve_source", "fetch_run_checkpoint", "command"]


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
    return f"{command('mlflow')} ui --backend-store-uri {tracking_uri}   (then open http://127.0.0.1:5000)"


def command(name: str) -> str:
    """``name`` if it is on PATH, else its path next to this Python (a venv that is not activated)."""
    beside = Path(sys.executable).parent / name
    if shutil.which(name) or not beside.exists():
        return name
    return os.path.relpath(beside) if not os.path.relpath(beside).startswith("..") else str(beside)


def sync(model_dir: Union[str, os.PathLike], tracking_uri: Optional[str] = None,
         timeout: float = 120.0) -> Dict[str, int]:
    """Deliver the tracking work a model directory kept while its store did not answer.

    Returns ``{tracking_uri: operations still pending}`` (all zeros when everything
    arrived). ``tracking_uri`` sends the work to another store than the one recorded,
    for example after a typo in the URI (only work that never reached any store can
    move); the model directory then records the new store and run.
    """
    from .mlflow_tracker import MlflowTracker
    root = Path(model_dir).expanduser() / SPOOL_DIR
    if not root.is_dir():
        raise FileNotFoundError(f"{str(Path(model_dir))!r} has no tracking spool ({SPOOL_DIR}/): nothing to sync")
    left: Dict[str, int] = {}
    for spool in spools_in(root):
        try:
            target = MlflowTracker(tracking_uri or spool.tracking_uri)
            if target.tracking_uri != spool.tracking_uri:
                if spool.delivered:
                    raise ValueError(f"part of the work in {spool.path} already reached {spool.tracking_uri}; "
                                     "sync it there (without tracking_uri)")
                spool.forget_runs()
            left[target.tracking_uri] = left.get(target.tracking_uri, 0) + target.deliver_spool(spool, timeout)
            _record_run(Path(model_dir).expanduser(), spool, target.tracking_uri)
        finally:
            spool.close()
    return left


def _record_run(model_dir: Path, spool, tracking_uri: str) -> None:
    """Point the model directory at the run its journal now lives in (so resuming finds it)."""
    from ..model_dir import ModelDirectory
    directory = ModelDirectory(model_dir)
    if not directory.has_metadata():
        return
    metadata = directory.read_metadata()
    record = metadata.get("tracking") or {}
    run_id = spool.run_id(record.get("run_key", ""))
    if run_id and (record.get("run_id"), record.get("tracking_uri")) != (run_id, tracking_uri):
        metadata["tracking"] = {**record, "tracking_uri": tracking_uri, "run_id": run_id}
        directory.write_metadata({k: v for k, v in metadata.items() if k != "format"})
