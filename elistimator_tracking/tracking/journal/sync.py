"""``sync``: deliver what a model directory's journal kept, then reconcile the run with the
model directory, whatever happened to the journal.

Reconciling sends again, from the model directory, what ``elistimator.json`` holds and the run
lacks: a validation point (a live one: ``history.py``), a checkpoint still on local disk (as its
logged model), and the final status ``close()`` recorded (or KILLED for a run whose process died
without closing it: nobody else writes the directory while ``sync`` holds its lock). What is
gone everywhere (a checkpoint pruned locally that never reached the store) is reported as lost,
by step. It all goes through the journal, so it is delivered exactly as training's own work.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ... import metadata as metadata_file
from ...errors import InvalidValueError, ModelDirectoryError, TrackingWarning
from ...model_dir import ModelDirectory, write_json_atomic
from ...writer_lock import WriterLock
from ..history import live_validations
from ..http_limits import bounded, quiet
from ..logged_models import checkpoint_key, run_models
from ..names import CHECKPOINT_KEY_TAG, LEGACY_CHECKPOINT_ARTIFACTS, LEGACY_STEP_DIR, VALIDATION, metric
from ..run import RunRecord
from .local import LocalCheckpoints
from .ops import Finish, LoggedModel, Metrics, Op
from .spool import SPOOL_DIR, STORE_FILE, Spool, spool_path, spools_in

UNCLOSED = "the training process ended without closing the run (found by elistimator sync)"


@dataclass
class SyncReport:
    """What ``sync`` did for one store: ``pending`` operations still undelivered (and ``why``, with
    ``waiting``: what they are), ``resent`` what reconciling sent again, ``lost`` what could not reach
    the store (gone everywhere), ``quarantined`` journal lines that could not be understood."""

    tracking_uri: str
    pending: int = 0
    why: str | None = None
    waiting: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return self.pending == 0


def sync(
    model_dir: str | os.PathLike, tracking_uri: str | None = None, timeout: float = 120.0
) -> dict[str, SyncReport]:
    """Deliver the tracking work a model directory kept while its store did not answer, and send
    again what its ``elistimator.json`` holds and the run lacks.

    It holds the directory's writer lock while it works, so it never replays a journal a training is
    writing. Replays never duplicate (points keep their timestamps, a run is found again by its key).

    Args:
        model_dir: the model directory (its ``tracking/`` journal).
        tracking_uri: send the work to another store than the one recorded, for example after a typo
            in the URI (only work that never reached any store can move); the model directory then
            records the new store and run.
        timeout: seconds to keep trying while the store does not answer.

    Returns:
        ``{tracking_uri: SyncReport}``; ``{}`` when the directory was never tracked.

    Raises:
        ModelDirectoryError: ``model_dir`` is missing, a file, or holds links that leave it.
        ModelDirectoryBusy: a training (or another ``sync``) writes the directory.
        InvalidValueError: ``tracking_uri`` names another store for work that already reached one.
        TrackingError: a damaged journal file whose store cannot be told.
    """
    from ..mlflow_tracker import MlflowTracker

    directory = _checked_directory(Path(model_dir).expanduser())
    root = directory.path / SPOOL_DIR
    if not root.is_dir():
        return {}  # never tracked
    writer = WriterLock(directory.path)
    writer.acquire("elistimator sync")  # the journal is the writer's: never replay one a training is writing
    try:
        record = metadata_file.read(directory).tracking if metadata_file.exists(directory) else None
        known = tuple(uri for uri in (tracking_uri, record.tracking_uri if record else None) if uri)
        reports: dict[str, SyncReport] = {}
        for spool in spools_in(root, known):
            target = MlflowTracker(tracking_uri or spool.tracking_uri)
            if target.tracking_uri != spool.tracking_uri:
                if spool.delivered:
                    raise InvalidValueError(
                        f"part of the work in {spool.path} already reached {spool.tracking_uri}; "
                        "sync it there (without tracking_uri)"
                    )
                spool.forget_runs()
            mine = record is not None and record.tracking_uri == spool.tracking_uri
            report = _deliver(target, spool, directory, record if mine else None, timeout)
            if mine and record is not None and report.delivered:
                record = _moved(directory, spool, record, target.tracking_uri)
            reports[target.tracking_uri] = _merged(reports.get(target.tracking_uri), report)
        return reports
    finally:
        writer.release()


def _checked_directory(path: Path) -> ModelDirectory:
    if not path.exists():
        raise ModelDirectoryError(f"model directory {str(path)!r} does not exist")
    if not path.is_dir():
        raise ModelDirectoryError(f"{str(path)!r} is a file, not a model directory")
    return ModelDirectory(path)


def _deliver(target, spool: Spool, directory: ModelDirectory, record: RunRecord | None, timeout: float) -> SyncReport:
    """Deliver the journal, reconcile the run when everything arrived, and say what happened."""
    deadline = time.monotonic() + timeout
    local = LocalCheckpoints(directory.path, record.run_key if record else None)
    report = SyncReport(target.tracking_uri, quarantined=list(spool.quarantined))
    worker = target.deliver_spool(spool, timeout, local)
    if not spool.pending() and record is not None:
        run_id = spool.run_id(record.run_key) or record.run_id
        if run_id is not None:
            try:
                resent = _reconcile(target, spool, local, record, run_id, worker.lost)
            except Exception as error:  # noqa: BLE001 -- what could be delivered is; the report says why not more
                report.why = f"reconciling the run with the model directory failed: {type(error).__name__}: {error}"
                resent = []
            if resent:
                report.resent = [what for what, _ in resent]
                for _, op in resent:
                    spool.append(op)
                lost = worker.lost
                worker = target.deliver_spool(spool, max(1.0, deadline - time.monotonic()), local)
                worker.lost[:0] = lost
    pending = spool.pending()
    report.pending = len(pending)
    report.waiting = [_described(op) for op in pending[:10]]
    report.lost = list(worker.lost)
    if pending and report.why is None:
        progress = worker.progress
        report.why = progress.fault or progress.last_error or "the store did not answer in time"
    for lost in report.lost:
        warnings.warn(
            f"{lost} is lost: it is neither in {directory.path} nor in {target.tracking_uri}",
            TrackingWarning,
            stacklevel=3,
        )
    return report


def _reconcile(
    target, spool: Spool, local: LocalCheckpoints, record: RunRecord, run_id: str, lost: list[str]
) -> list[tuple[str, Op]]:
    """The operations that give the run what ``elistimator.json`` holds and the run lacks; what is gone
    everywhere goes to ``lost``."""
    client = target._mlflow()
    with bounded(), quiet():
        run = client.get_run(run_id)
        live = live_validations(client, run)
        models = run_models(client, run.info.experiment_id, run_id)
        legacy = {
            int(match.group(1))
            for a in client.list_artifacts(run_id, LEGACY_CHECKPOINT_ARTIFACTS)
            if a.is_dir and (match := LEGACY_STEP_DIR.fullmatch(Path(a.path).name))
        }
    index, now = local.index(), int(time.time() * 1000)
    ops: list[tuple[str, Op]] = []
    for step, metrics in sorted(index.validations.items()):
        missing = {k: v for k, v in metrics.items() if live.get(step, {}).get(k) != v and v == v}
        entry = index.records.get(step)
        if missing:
            ops.append(
                (
                    f"validation metrics {sorted(missing)} at step {step}",
                    Metrics(
                        run=record.run_key,
                        metrics={metric(VALIDATION, k): v for k, v in missing.items()},
                        step=step,
                        timestamp=now,
                        model_key=checkpoint_key(record.run_key, step, entry.files) if entry else None,
                    ),
                )
            )
    for step, entry in sorted(index.records.items()):
        key = checkpoint_key(record.run_key, step, entry.files)
        model = models.get(step)
        if not entry.stored or (model is not None and model.tags.get(CHECKPOINT_KEY_TAG) == key) or step in legacy:
            continue  # retired by the retention policy (or lost, found before), or in the store
        outbox = spool.outbox(f"model-step-{step}")
        if not local.remake(step, key, outbox):  # pruned locally, or damaged: not in the store either
            spool.remove_outbox(spool.relative(outbox))
            lost.append(f"the checkpoint at step {step}")
            local.not_stored(step)  # said once: elistimator.json records that the store lacks it
            continue
        ops.append(
            (
                f"the checkpoint at step {step}",
                LoggedModel(run=record.run_key, directory=spool.relative(outbox), step=step, key=key),
            )
        )
    if run.info.status == "RUNNING":  # sync holds the writer lock: no training of this directory runs now
        status = record.status or "KILLED"
        ops.append(
            (
                f"the run's end ({status})",
                Finish(run=record.run_key, status=status, error=None if record.status else UNCLOSED),
            )
        )
    return ops


def _moved(directory: ModelDirectory, spool: Spool, record: RunRecord, tracking_uri: str) -> RunRecord:
    """Point the model directory at the run its journal now lives in (so resuming finds it); work sent
    to another store takes its spool along (the folder is named after the store)."""
    run_id = spool.run_id(record.run_key)
    target = spool_path(spool.path.parent, tracking_uri)
    if tracking_uri != record.tracking_uri and not target.exists():
        spool.close()
        os.rename(spool.path, target)
        write_json_atomic(target / STORE_FILE, {"tracking_uri": tracking_uri})
    moved = (
        record
        if tracking_uri == record.tracking_uri
        else RunRecord(tracking_uri, record.experiment, record.run_key, status=record.status)
    )
    moved = moved.with_run_id(run_id)
    metadata_file.record_run(directory, moved)
    return moved


def _merged(first: SyncReport | None, second: SyncReport) -> SyncReport:
    if first is None:
        return second
    first.pending += second.pending
    first.why = first.why or second.why
    for name in ("waiting", "resent", "lost", "quarantined"):
        getattr(first, name).extend(getattr(second, name))
    return first


def _described(op: Op) -> str:
    step = getattr(op, "step", None)
    return f"{op.kind} #{op.seq}" + (f" (step {step})" if step is not None else "")
