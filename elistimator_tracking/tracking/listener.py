"""The MLflow run of an Elistimator, as a listener: what each moment of training sends to it.

The core notifies; this listener turns moments into tracker calls (params, metrics, each
checkpoint as its logged model, selection tags, TensorBoard events, the run's end) and keeps the
run's record (``run.RunRecord``). With a store retention policy (``KeepBest``) it also retires
the checkpoints that fall out of it, after their successor. When the run cannot be started it
says so once and a ``NullTracker`` takes over: nothing else checks whether tracking works.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..checkpoints import CheckpointIndex, KeepBest, best_step, latest_step
from ..datasets import DataDescription
from ..errors import AliasKeptWarning, TrackingWarning, TrainingStopped
from ..events import TRAIN_DIR, VALIDATION_DIR
from ..listeners import Listener, RunContext, SavedCheckpoint
from ..model_dir import link_tree
from .base import NullTracker, Tracker
from .journal.local import LocalCheckpoints
from .journal.spool import SPOOL_DIR
from .names import (
    BEST_METRIC_TAG,
    BEST_STEP_TAG,
    EVALUATION,
    LATEST_STEP_TAG,
    MODEL_DIR_ARTIFACT,
    SOURCE_ARTIFACTS,
    TENSORBOARD_ARTIFACTS,
    TRAIN,
    VALIDATION,
    metric,
    selected_by,
    stop_tags,
)
from .run import RunRecord
from .run_info import (
    mlflow_name,
    model_fn_file,
    provenance_tags,
    redacted,
    run_params,
    scrub,
    scrub_source,
    version_tags,
)


def make_tracker(
    tracking: bool | str | os.PathLike | Tracker, recorded_uri: str | None = None
) -> Tracker | Callable[[], Tracker]:
    """The tracker for ``Elistimator(tracking=...)``, or for MLflow the function that makes it when the
    run starts (a model loaded only to predict never imports mlflow for it).

    ``True``: MLflow at the URI the model directory recorded (when resuming), else
    ``MLFLOW_TRACKING_URI``, else MLflow's default local store. A string: that URI.
    A ``Tracker``: itself. ``False``: no tracking. (``Settings`` checked the type.)
    """
    if isinstance(tracking, Tracker):
        return tracking
    if tracking is False:
        return NullTracker()
    uri = (recorded_uri or os.environ.get("MLFLOW_TRACKING_URI") or None) if tracking is True else os.fspath(tracking)

    def mlflow_tracker() -> Tracker:
        from .mlflow_tracker import MlflowTracker  # the one place the training side imports mlflow

        return MlflowTracker(uri)

    return mlflow_tracker


def selection_tags(index: CheckpointIndex) -> dict[str, str]:
    """The run's latest-step and best-step (by validation loss) tags."""
    tags = {LATEST_STEP_TAG: str(latest_step(index))}
    try:
        tags[BEST_STEP_TAG] = str(best_step(index, "loss", "min"))
        tags[BEST_METRIC_TAG] = selected_by("loss", "min")
    except LookupError:
        pass
    return tags


class TrackingListener(Listener):
    """Tracks one Elistimator's run; ``recorded`` is the run its model directory names (to resume);
    ``retention`` keeps only some checkpoints in the store (None: every one)."""

    name = "tracking"
    warning_category = TrackingWarning

    def __init__(
        self,
        tracker: Tracker | Callable[[], Tracker],
        experiment: str,
        run_name: str | None,
        tags: Mapping[str, str],
        recorded: RunRecord | None = None,
        cache_dir: Path | None = None,
        system_metrics: bool = False,
        retention: KeepBest | None = None,
    ):
        self._tracker = tracker if isinstance(tracker, Tracker) else None
        self._make_tracker = tracker
        self._system_metrics, self._retention = system_metrics, retention
        self._sampler: Any = None  # a SystemMetrics while the run is open
        self._experiment, self._run_name, self._tags = experiment, run_name, dict(tags)
        self._recorded = recorded
        self._cache_dir = cache_dir
        self._context: RunContext | None = None
        self._stores: dict[tuple[str, str], Any] = {}

    @property
    def tracker(self) -> Tracker:
        """The tracker, made when first needed (see ``make_tracker``)."""
        if self._tracker is None:
            self._tracker = self._make_tracker()  # type: ignore[operator]
        return self._tracker

    @tracker.setter
    def tracker(self, tracker: Tracker) -> None:
        self._tracker = tracker

    @property
    def record(self) -> RunRecord | None:
        """The run: the started tracker's, else the one the model directory names."""
        started = self._tracker.record if self._tracker is not None else None
        return started or self._recorded

    def failure_note(self) -> str:
        where = f" is kept in {self._context.model_dir / SPOOL_DIR}" if self._context else " is kept"
        return f"Training goes on; what was journaled{where}"

    @property
    def _tracking(self) -> bool:
        return self._context is not None and self.tracker.active

    # -- the moments ----------------------------------------------------------------------

    def on_setup(self, context: RunContext) -> None:
        if self._context is not None:
            return  # the run started at the first setup()
        self._context = context
        if not self.tracker.active:
            return
        resuming = self._recorded is not None
        tags = redacted({**({} if resuming else provenance_tags(context.model_fn)), **self._tags})
        uri = getattr(self.tracker, "tracking_uri", "")
        run = self._recorded.ended(None) if self._recorded else RunRecord.new(uri, self._experiment)
        if self._recorded is not None and self._experiment != self._recorded.experiment:
            run = RunRecord(run.tracking_uri, self._experiment, run.run_key, run.run_id)
        try:
            self.tracker.start(
                context.model_dir / SPOOL_DIR,
                run,
                scrub(self._run_name) if self._run_name else None,
                tags,
                LocalCheckpoints(context.model_dir, run.run_key),
            )
        except Exception as error:  # noqa: BLE001 -- no run: tracking is off, training goes on
            warnings.warn(
                f"tracking is off for this Elistimator: {type(error).__name__}: {scrub(str(error))}. "
                f"{self.failure_note()}",
                TrackingWarning,
                stacklevel=4,
            )
            self.tracker = NullTracker()
            return
        if self._system_metrics:
            from .system_metrics import SystemMetrics

            self._sampler = SystemMetrics(self.tracker.log_metrics).start()
        if resuming:
            self.tracker.set_tags(redacted(self._tags))
            return
        self._send_source(context.model_fn)
        params, renamed = run_params(context.params, context.saver)
        if renamed:
            warnings.warn(
                "params logged under other names (MLflow refuses theirs, or two of them share a name): "
                + "; ".join(renamed),
                TrackingWarning,
                stacklevel=4,
            )
        self.tracker.log_params(params)

    def on_params(self, params: Mapping[str, Any]) -> None:
        if self._tracking and self._recorded is None:  # a resumed run has them already
            self.tracker.log_params(redacted({mlflow_name(k): v for k, v in params.items()}))

    def on_train_summary(self, step: int, metrics: Mapping[str, float], summary: bytes | None) -> None:
        self._log_metrics(TRAIN, step, metrics)

    def on_validation(self, step: int, metrics: Mapping[str, float], checkpoint: SavedCheckpoint | None) -> None:
        if not self._tracking:
            return
        self.tracker.hold({"kind": "validation", "step": step, "metrics": dict(metrics)})
        if checkpoint is None:
            self._log_metrics(VALIDATION, step, metrics)
            return
        named = {mlflow_name(metric(VALIDATION, k)): v for k, v in metrics.items()}
        files = checkpoint.index.records[step].files
        self.tracker.log_model_metrics(named, step, files)
        self._send(checkpoint, metadata_only=True)  # a checkpoint already sent: only its metrics changed

    def on_evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
        self._log_metrics(EVALUATION, step, metrics)

    def on_input(self, context: str, describe: Callable[[], DataDescription]) -> None:
        if self._tracking:
            from .schemas import dataset_fields

            self.tracker.log_input(dataset_fields(describe()), context)

    def on_checkpoint(self, checkpoint: SavedCheckpoint) -> None:
        if not self._tracking:
            return
        files = checkpoint.index.records[checkpoint.step].files
        self.tracker.hold({"kind": "checkpoint", "step": checkpoint.step, "files": files})
        self._send(checkpoint, metadata_only=False)

    def on_branch(self, step: int, dropped: Mapping[int, Mapping[str, float]]) -> None:
        """The run keeps the abandoned branch's validation points; a NaN after them at each of their
        steps retracts them (the latest point at a step counts; NaN never wins a selection)."""
        if not self._tracking or not dropped:
            return
        self.tracker.hold(
            {"kind": "branch", "step": step, "dropped": {str(s): dict(metrics) for s, metrics in dropped.items()}}
        )
        for later, metrics in sorted(dropped.items()):
            self._log_metrics(VALIDATION, later, {name: math.nan for name in metrics})

    def on_commit(self, committed: bool) -> None:
        self.tracker.release(committed)

    def on_stop(self, stop: TrainingStopped) -> None:
        """The run records why and where training stopped early."""
        if self._tracking:
            self.tracker.set_tags(redacted(stop_tags(stop.step or 0, stop.reason, stop.best)))

    def on_close(self, status: str, error: str | None) -> None:
        if not self._tracking:
            return
        try:
            if self._sampler is not None:
                self._sampler.stop()
            self._send_events()
        finally:
            self.tracker.finish(status, scrub(error) if error else None)

    # -- what is sent ---------------------------------------------------------------------

    def _log_metrics(self, prefix: str, step: int, metrics: Mapping[str, float]) -> None:
        if self._tracking:
            self.tracker.log_metrics({mlflow_name(metric(prefix, k)): v for k, v in metrics.items()}, step)

    def _send(self, checkpoint: SavedCheckpoint, metadata_only: bool) -> None:
        """The checkpoint as its logged model (the one copy in the store): its files, meta graph and
        JSON with checksums and metrics, or (``metadata_only``) the JSON alone; then the selection
        tags, and the retirement of what the retention policy no longer keeps."""
        record = checkpoint.index.records[checkpoint.step]
        if not record.stored:
            return  # retired from the store already: nothing of it is sent again
        outbox = self.tracker.outbox(f"model-step-{checkpoint.step}")
        checkpoint.write(outbox, files=not metadata_only)
        self.tracker.log_checkpoint_model(outbox, checkpoint.step, record.files, metadata_only=metadata_only)
        self.tracker.set_tags(selection_tags(checkpoint.index))
        self._retire(checkpoint.index)

    def _retire(self, index: CheckpointIndex) -> None:
        """Delete from the store the checkpoints the retention policy no longer keeps (journaled after
        their successor, so delivered after it; ``elistimator.json`` records them as not stored)."""
        if self._retention is None:
            return
        kept = self._retention.kept(index)
        for step, record in sorted(index.records.items()):
            if record.stored and step not in kept:
                record.stored = False
                self.tracker.delete_checkpoint_model(step, record.files)

    def send_directory(self, directory: Path, artifact_path: str) -> None:
        """The files of ``directory`` under ``artifact_path`` of the run (hard-linked into an outbox)."""
        if not self._tracking:
            return
        outbox = self.tracker.outbox(Path(artifact_path).name)
        link_tree(directory, outbox)
        self.tracker.log_artifacts(outbox, artifact_path)

    def _send_source(self, model_fn: Callable | None) -> None:
        """The file defining ``model_fn``, secrets redacted, under ``source/`` (beside the git tags: the
        code as it ran, committed or not)."""
        path = model_fn_file(model_fn)
        if path is None:
            return
        outbox = self.tracker.outbox(SOURCE_ARTIFACTS)
        text = scrub_source(path.read_text(encoding="utf-8", errors="replace"))
        (outbox / path.name).write_text(text, encoding="utf-8")
        self.tracker.log_artifacts(outbox, SOURCE_ARTIFACTS)  # provenance_tags named it

    def _send_events(self) -> None:
        """The TensorBoard event directories, under ``tensorboard/``."""
        assert self._context is not None
        model_dir = self._context.model_dir
        logdirs = [d for d in (model_dir / TRAIN_DIR, model_dir / VALIDATION_DIR) if d.is_dir()]
        if not logdirs:
            return
        outbox = self.tracker.outbox(TENSORBOARD_ARTIFACTS)
        for logdir in logdirs:
            link_tree(logdir, outbox / logdir.name)
        self.tracker.log_artifacts(outbox, TENSORBOARD_ARTIFACTS)

    # -- beyond the moments: what the Elistimator asks of its run -------------------------------

    def checkpoint_store(self) -> Any:
        """Where this model directory's pruned checkpoints can be fetched (its run), or None. What this
        session journaled is delivered first (bounded): the checkpoint asked for may be among it."""
        flush = getattr(self._tracker, "flush", None) if self._tracking else None
        if flush is not None:
            flush()
        run = self.record
        if run is None or not run.run_id:
            return None
        key = (run.tracking_uri, run.run_id)
        if key not in self._stores:
            from .resolve import RunCheckpoints

            self._stores[key] = RunCheckpoints(run.run_id, run.tracking_uri, self._cache_dir)
        return self._stores[key]

    def register(
        self, checkpoint: SavedCheckpoint, name: str, alias: str | None, criterion: Any, force: bool = False
    ) -> str:
        """Register ``checkpoint`` as a new version of ``name`` (see ``Elistimator.register_best``);
        an ``AliasKeptWarning`` when the alias stays where it is."""
        if self.tracker.active:
            from .registry import checked_registration

            checked_registration(name, alias)
        run = self.record
        with tempfile.TemporaryDirectory(prefix="elistimator-register-") as work:
            export = Path(work) / MODEL_DIR_ARTIFACT
            checkpoint.write(export)
            version, kept = self.tracker.register(
                checkpoint.step,
                export,
                name,
                alias,
                version_tags(checkpoint.step, checkpoint.metrics, criterion),
                run_id=run.run_id if run else None,
                metric=criterion.metric,
                mode=criterion.mode,
                force=force,
            )
        if kept:
            from .registry import FORCE_HINT

            warnings.warn(f"{kept}; {FORCE_HINT}", AliasKeptWarning, stacklevel=3)
        return version
