"""The MLflow tracker: a thin front over the journal (``journal/``). Everything is journaled
first, then delivered by the worker thread.

The training thread only appends to the spool (a line of JSON, or hard links for checkpoint
files) and returns. Nothing is lost between ``elistimator.json`` and the journal (journal, then
commit): what a checkpoint, validation or branch sends is journaled *before* ``elistimator.json``
commits it, each operation carrying a clause naming what it belongs to, and is held back from
delivery until the commit is done (``hold`` / ``release``). A process that dies in between
leaves journaled operations whose clause the file does not hold: the next run in the directory
(or ``sync``) drops them, once and for good (``Spool.settle``); those the file holds are
delivered. Delivery marks an operation delivered only after the store answered, and replays are
harmless, so every checkpoint and validation the file holds reaches the run exactly once.

Waits are bounded: ``start`` waits for the run at most ``start_timeout`` and stops at the first
failed attempt; ``finish`` waits for delivery at most ``close_timeout``, while the store answers
(``worker.Worker.wait``).
"""

from __future__ import annotations

import dataclasses
import threading
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from ..criterion import Criterion
from ..errors import InvalidValueError, TrackingError, TrackingWarning
from .base import Tracker
from .http_limits import bounded, quiet, quiet_store_logs
from .journal.delivery import Delivery
from .journal.local import LocalCheckpoints
from .journal.ops import Artifacts, Clause, DeleteModel, Finish, Input, LoggedModel, Metrics, Op, Params, Start, Tags
from .journal.spool import Spool
from .journal.worker import Worker, store_probe
from .logged_models import checkpoint_key
from .run import RUN_STATUSES, RunRecord
from .store_uri import StoreUri

LINGER = 1.0  # seconds metric points may wait in training for others to share one store call


class MlflowTracker(Tracker):
    """Track runs in MLflow at ``tracking_uri`` (default: ``MLFLOW_TRACKING_URI`` or MLflow's default).

    Args:
        tracking_uri: an MLflow tracking URI; a relative ``sqlite:///`` path is made absolute.
            Credentials in it (user info, secret query parameters) stay in this process's memory:
            the URI is recorded and shown without them (``store_uri.py``).
        start_timeout: the longest ``start`` waits for the run id before training goes on (the run
            is then created when the store answers).
        close_timeout: the longest ``finish`` waits for delivery while the store answers.
        max_backoff: the longest pause between delivery attempts while the store is down.
        client: what delivery calls (default: an ``MlflowClient`` of ``tracking_uri``); the tests of
            delivery's logic pass a recording double that takes the same calls.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        start_timeout: float = 10.0,
        close_timeout: float = 60.0,
        max_backoff: float = 30.0,
        client: Any = None,
    ):
        quiet_store_logs()
        self._store = StoreUri.given(tracking_uri or mlflow.get_tracking_uri())
        self.tracking_uri = self._store.public
        self.start_timeout, self.close_timeout, self.max_backoff = start_timeout, close_timeout, max_backoff
        self._spool: Spool | None = None
        self._worker: Worker | None = None
        self._run: RunRecord | None = None
        self._client: Any = client
        self._held: list[Op] | None = None  # journaled, awaiting elistimator.json's commit
        self._clause: Clause | None = None
        self._holder: int | None = None  # the thread whose work is held (the training thread)
        self._deferred: list[Op] = []  # other threads' work during a hold
        self._holding = threading.RLock()  # journal order == queue order

    # -- the Tracker interface ----------------------------------------------------------

    def start(
        self,
        spool_root: Path,
        run: RunRecord,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        local: LocalCheckpoints | None = None,
    ) -> None:
        if self._spool is not None:
            raise TrackingError("this tracker already started a run; a tracker serves one Elistimator")
        same_store = run.tracking_uri == self.tracking_uri
        self._run = run if same_store else RunRecord.new(self.tracking_uri, run.experiment)
        worker = self._open(Spool(spool_root, self.tracking_uri), local, "elistimator-tracking", LINGER)
        if same_store and run.run_id and self._spool and not self._spool.run_id(run.run_key):
            self._spool.set_run(run.run_key, run.run_id)
        start = self._append(
            Start(experiment=self._run.experiment, run_name=run_name, tags=dict(tags or {}), run_id=self._run.run_id)
        )
        worker.start()
        worker.wait(start.seq, self.start_timeout, patient=False)

    def log_params(self, params: Mapping[str, str]) -> None:
        if params:
            self._append(Params(params=dict(params)))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if tags:
            self._append(Tags(tags=dict(tags)))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._append(
            Metrics(
                metrics={k: float(v) for k, v in metrics.items()}, step=int(step), timestamp=int(time.time() * 1000)
            )
        )

    def log_input(self, dataset: Mapping[str, str], context: str) -> None:
        self._append(Input(dataset=dict(dataset), context=context))

    def log_model_metrics(self, metrics: Mapping[str, float], step: int, files: Mapping[str, str]) -> None:
        self._append(
            Metrics(
                metrics={k: float(v) for k, v in metrics.items()},
                step=int(step),
                timestamp=int(time.time() * 1000),
                model_key=self._key(step, files),
            )
        )

    def log_checkpoint_model(
        self, directory: Path, step: int, files: Mapping[str, str], metadata_only: bool = False
    ) -> None:
        self._append(
            LoggedModel(
                directory=self._require_started().relative(directory),
                step=int(step),
                key=self._key(step, files),
                metadata_only=metadata_only,
            )
        )

    def delete_checkpoint_model(self, step: int, files: Mapping[str, str]) -> None:
        self._append(DeleteModel(step=int(step), key=self._key(step, files)))

    def outbox(self, name: str) -> Path:
        return self._require_started().outbox(name)

    def log_artifacts(self, directory: Path, artifact_path: str) -> None:
        self._append(Artifacts(directory=self._require_started().relative(directory), artifact_path=artifact_path))

    def hold(self, clause: Mapping[str, Any]) -> None:
        with self._holding:
            self._clause, self._held, self._holder = Clause.decode(clause), [], threading.get_ident()

    def release(self, committed: bool) -> None:
        with self._holding:
            held, deferred = self._held or [], self._deferred
            self._clause, self._held, self._deferred = None, None, []
            if committed and held and self._worker is not None:
                self._worker.submit(held)
            for op in deferred:
                self._append(op)

    def finish(self, status: str, error: str | None = None) -> None:
        if status not in RUN_STATUSES:
            raise InvalidValueError(f"status must be one of {RUN_STATUSES}, got {status!r}")
        if self._spool is None or self._worker is None or self._run is None:
            return
        self._run = self._run.ended(status)
        last = self._append(Finish(status=status, error=error))
        delivered = self._worker.wait(last.seq, self.close_timeout)
        progress = self._worker.progress
        self._worker.stop()
        if delivered:
            self._spool.compact()
        elif not progress.login_refused:
            left = len(self._spool.pending())
            warnings.warn(
                f"{left} tracking operation(s) could not be delivered to {self.tracking_uri} "
                f"({progress.fault or progress.last_error or 'the store did not answer in time'}); they are "
                f"kept in {self._spool.path} and delivered at the next run in this model directory or with "
                "elistimator_tracking.tracking.sync(model_dir)",
                TrackingWarning,
                stacklevel=3,
            )
        self._spool.close()

    @property
    def record(self) -> RunRecord | None:
        if self._spool is None or self._run is None:
            return None
        return self._run.with_run_id(self._spool.run_id(self._run.run_key))

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait (at most ``timeout`` seconds, while the store answers) until everything journaled so
        far is delivered; True when it is."""
        if self._worker is None:
            return True
        return self._worker.wait(self._worker.last_queued(), timeout)

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
        from .registry import register_checkpoint

        if self._spool is not None and self._run is not None:
            self.flush(self.close_timeout)
            run_id = self._spool.run_id(self._run.run_key)
        if run_id is None:
            why = self._worker.progress.last_error if self._worker else None
            raise TrackingError(
                f"cannot register {name!r}: the run does not exist yet in {self.tracking_uri} "
                f"({why or 'the store has not answered'}); try again when it answers"
            )
        with bounded(), quiet():
            return register_checkpoint(
                self._mlflow(), run_id, step, model_dir, name, alias, tags, Criterion(metric, mode), force
            )

    # -- replay of a spool without a training run (``sync``) -------------------------------

    def deliver_spool(self, spool: Spool, timeout: float, local: LocalCheckpoints | None = None) -> Worker:
        """Deliver ``spool``'s pending operations, waiting at most ``timeout`` seconds; returns the
        worker (its progress says what happened); the spool is compacted when all arrived."""
        worker = self._open(spool, local, "elistimator-sync", 0.0)
        if worker.last_queued() > spool.delivered:
            worker.start()
            worker.wait(worker.last_queued(), timeout)
            worker.stop()
        if not spool.pending():
            spool.compact()
        spool.close()
        return worker

    # -- journal --------------------------------------------------------------------------

    def _open(self, spool: Spool, local: LocalCheckpoints | None, name: str, linger: float) -> Worker:
        """Use ``spool``: settle what a crash left between its journal and elistimator.json, sweep stale
        staging, and queue the pending operations (an earlier session's start of this run learns the
        experiment named now: the first may have been deleted meanwhile)."""
        if local is not None:
            spool.settle(local.holds)
        spool.sweep_outbox()
        self._spool = spool
        delivery = Delivery(self._mlflow, spool, self.tracking_uri, local)
        self._worker = Worker(
            spool,
            delivery,
            self.tracking_uri,
            name,
            max_backoff=self.max_backoff,
            linger=linger,
            probe=store_probe(self.tracking_uri),
        )
        pending = spool.pending()
        if self._run is not None:
            pending = [
                dataclasses.replace(op, experiment=self._run.experiment)
                if isinstance(op, Start) and op.run == self._run.run_key
                else op
                for op in pending
            ]
        self._worker.submit(pending)
        return self._worker

    def _key(self, step: int, files: Mapping[str, str]) -> str:
        return checkpoint_key(self._require_run().run_key, step, files)

    def _require_started(self) -> Spool:
        if self._spool is None:
            raise TrackingError("the tracker has not started a run: Elistimator.setup() starts it")
        return self._spool

    def _require_run(self) -> RunRecord:
        if self._run is None:
            raise TrackingError("the tracker has not started a run: Elistimator.setup() starts it")
        return self._run

    def _append(self, op: Op) -> Op:
        """Journal ``op``; queue it for delivery, or hold it back until the commit it belongs to.

        Work of other threads (system metrics) during a hold waits in memory until ``release``:
        journaled then, its sequence numbers follow the held work's, so the journal stays in the
        order the queue delivers it (a delivered mark never passes undelivered work)."""
        spool, run = self._require_started(), self._require_run()
        op = dataclasses.replace(op, run=run.run_key)
        with self._holding:
            if self._clause is not None:
                if threading.get_ident() != self._holder:
                    self._deferred.append(op)
                    return op
                op = spool.append(op.numbered(0, self._clause), durable=True)
                assert self._held is not None
                self._held.append(op)
                return op
            op = spool.append(op)
            if self._worker is not None:
                self._worker.submit([op])
            return op

    def _mlflow(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self._store.client_uri)
        return self._client
