"""Deliver what a model directory's tracking journal kept while its store did not answer."""

from __future__ import annotations

import os
from pathlib import Path

from .. import metadata as metadata_file
from ..checkpoints import CheckpointIndex
from ..errors import InvalidValueError, ModelDirectoryError
from ..model_dir import ModelDirectory
from ..writer_lock import WriterLock
from .spool import SPOOL_DIR, spools_in


def sync(model_dir: str | os.PathLike, tracking_uri: str | None = None, timeout: float = 120.0) -> dict[str, int]:
    """Deliver the tracking work a model directory kept while its store did not answer.

    Returns ``{tracking_uri: operations still pending}`` (all zeros when everything
    arrived; ``{}`` when the directory kept no tracking work). ``tracking_uri`` sends the work
    to another store than the one recorded, for example after a typo in the URI (only work
    that never reached any store can move); the model directory then records the new store and run.
    """
    from .mlflow_tracker import MlflowTracker

    directory = ModelDirectory(Path(model_dir).expanduser())
    root = directory.path / SPOOL_DIR
    if not directory.path.is_dir():
        raise ModelDirectoryError(f"model directory {str(directory.path)!r} does not exist")
    if not root.is_dir():
        return {}  # never tracked, or everything arrived: nothing to sync
    writer = WriterLock(directory.path)
    writer.acquire("elistimator sync")  # the journal is the writer's: never replay one a training is writing
    try:
        index = metadata_file.read(directory).index if metadata_file.exists(directory) else CheckpointIndex()
        left: dict[str, int] = {}
        for spool in spools_in(root):
            target = MlflowTracker(tracking_uri or spool.tracking_uri)
            if target.tracking_uri != spool.tracking_uri:
                if spool.delivered:
                    raise InvalidValueError(
                        f"part of the work in {spool.path} already reached {spool.tracking_uri}; "
                        "sync it there (without tracking_uri)"
                    )
                spool.forget_runs()
            left[target.tracking_uri] = left.get(target.tracking_uri, 0) + target.deliver_spool(
                spool, timeout, index.holds
            )
            _record_run(directory, spool, target.tracking_uri)
        return left
    finally:
        writer.release()


def _record_run(directory: ModelDirectory, spool, tracking_uri: str) -> None:
    """Point the model directory at the run its journal now lives in (so resuming finds it)."""
    if not metadata_file.exists(directory):
        return
    record = metadata_file.read(directory).tracking or {}
    run_id = spool.run_id(record.get("run_key", ""))
    if run_id:
        metadata_file.record_run(directory, tracking_uri, run_id)
