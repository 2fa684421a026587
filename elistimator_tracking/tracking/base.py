"""The tracker interface and its null implementation: the bottom of ``tracking/``.

It imports nothing of the package but its exceptions and the run record. The MLflow
implementation (``mlflow_tracker.py``) is imported only when tracking is on, so
``tracking=False`` works without importing mlflow at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import AliasKeptWarning, TrackingError, TrackingWarning  # noqa: F401 (re-exported)
from .run import RUN_STATUSES, RunRecord  # noqa: F401 (re-exported)


class Tracker:
    """What the Elistimator tells a tracking backend (through ``TrackingListener``).

    The logging calls (params, tags, metrics, artifacts) return at once: what a tracker
    cannot deliver now it keeps and delivers later. ``start`` may wait, bounded, for the
    run to exist; ``finish`` waits, bounded, for delivery; ``register`` is synchronous.
    """

    #: False for the null tracker: the Elistimator then skips preparing artifacts.
    active = True

    def start(
        self,
        spool_root: Path,
        run: RunRecord,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        local: Any = None,
    ) -> None:
        """Open the run ``run`` names (a new record, or the one the model directory keeps: resumed).

        ``spool_root`` is where undelivered work is kept (inside the model directory). It may wait,
        bounded, for the store to create the run; a store that does not answer in time gets the run
        created later, in the background. ``local`` (``journal.local.LocalCheckpoints``) says what
        ``elistimator.json`` holds: work an earlier, crashed process journaled for a commit the file
        lacks is dropped, and a checkpoint whose staged files are gone is remade from it.
        """
        raise NotImplementedError

    def hold(self, clause: Mapping[str, Any]) -> None:
        """Until ``release``, keep what is logged back from delivery: it belongs to ``clause`` (a
        checkpoint, a validation, a branch) that ``elistimator.json`` is about to commit. A tracker
        without a durable record may send at once: this one does nothing."""

    def release(self, committed: bool) -> None:
        """The commit ``hold`` awaited is done (``committed``) or failed: deliver what was held, or drop it."""

    def log_params(self, params: Mapping[str, str]) -> None:
        raise NotImplementedError

    def set_tags(self, tags: Mapping[str, str]) -> None:
        raise NotImplementedError

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """All of ``metrics`` at global ``step``, delivered as one batch."""
        raise NotImplementedError

    def log_input(self, dataset: Mapping[str, str], context: str) -> None:
        """Record ``dataset`` (MLflow dataset fields: name, digest, source_type, source, schema, profile)
        as an input of the run, used for ``context`` (training, validation, evaluation). A backend
        without datasets ignores it (the default)."""

    def log_model_metrics(self, metrics: Mapping[str, float], step: int, files: Mapping[str, str]) -> None:
        """Like ``log_metrics``, and linked to the logged model of the checkpoint at ``step`` whose
        files have the checksums ``files`` (see ``log_checkpoint_model``); this one: ``log_metrics``."""
        self.log_metrics(metrics, step)

    def log_checkpoint_model(
        self, directory: Path, step: int, files: Mapping[str, str], metadata_only: bool = False
    ) -> None:
        """Make an ``outbox`` directory holding one checkpoint (its files' checksums: ``files``) the
        model of the run at global ``step`` (in MLflow: a logged model, the one copy of the checkpoint
        in the store). ``metadata_only``: the model exists; its ``elistimator.json`` changed. This
        one does nothing."""

    def delete_checkpoint_model(self, step: int, files: Mapping[str, str]) -> None:
        """Delete the checkpoint at ``step`` from the store (the retention policy dropped it), after
        everything journaled before (its successor included) is delivered. This one does nothing."""

    def outbox(self, name: str) -> Path:
        """A fresh directory to fill and hand to ``log_artifacts`` (it is removed once delivered)."""
        raise NotImplementedError

    def log_artifacts(self, directory: Path, artifact_path: str) -> None:
        """Upload the files of an ``outbox`` directory under ``artifact_path`` of the run."""
        raise NotImplementedError

    def finish(self, status: str, error: str | None = None) -> None:
        """End the run with ``status`` (FINISHED, FAILED or KILLED) and wait, bounded, for delivery."""
        raise NotImplementedError

    @property
    def record(self) -> RunRecord | None:
        """The run this tracker tracks to, as the model directory records it to resume it (None: a
        tracker that resumes nothing, or before ``start``)."""
        return None

    def register(
        self,
        step: int,
        model_dir: Path,
        name: str,
        alias: str | None,
        tags: Mapping[str, str],
        run_id: str | None = None,
        *,
        metric: str = "loss",
        mode: str = "auto",
        force: bool = False,
    ) -> tuple[str, str | None]:
        """Register ``model_dir`` (one checkpoint) as a new version of model ``name``; move ``alias`` to
        it only if it beats the alias's version on validation ``metric`` in ``mode`` (or ``force``).
        Returns the version and, when the alias stayed, why.

        The version belongs to this tracker's run, or to ``run_id`` when no run was started (a model
        loaded with ``from_disk`` names its run). Unlike the logging calls this one is synchronous and
        raises: the caller asked for it.
        """
        raise NotImplementedError


class NullTracker(Tracker):
    """Tracking off: every call does nothing."""

    active = False

    def start(self, spool_root, run, run_name=None, tags=None, local=None) -> None:
        pass

    def log_params(self, params) -> None:
        pass

    def set_tags(self, tags) -> None:
        pass

    def log_metrics(self, metrics, step) -> None:
        pass

    def outbox(self, name: str) -> Path:
        raise TrackingError("the null tracker has no outbox")

    def log_artifacts(self, directory, artifact_path) -> None:
        pass

    def finish(self, status, error=None) -> None:
        pass

    @property
    def record(self) -> None:
        return None

    def register(
        self, step, model_dir, name, alias, tags, run_id=None, *, metric="loss", mode="auto", force=False
    ) -> tuple[str, str | None]:
        raise TrackingError(
            "registering a model needs tracking: create the Elistimator with tracking=True (or a tracking URI)"
        )
