"""The MLflow tracker: everything is journaled first, then delivered by a worker thread.

The training thread only appends to the spool (a line of JSON, or hard links for
checkpoint files) and returns. One daemon thread delivers the journal in order
(``delivery.py`` says how each operation is sent and which refusals are final).

Nothing is lost between ``elistimator.json`` and the journal (journal, then commit):
what a checkpoint, validation or branch sends is journaled *before* ``elistimator.json``
commits it, each operation carrying a clause naming what it belongs to, and is held
back from delivery until the commit is done (``hold`` / ``release``). A process that dies
in between leaves journaled operations whose clause the file does not hold: the next run
in the directory (or ``sync``) drops them, once and for good (``Spool.settle``); those
the file does hold are delivered. Delivery marks an operation delivered only after the
store answered, and replays are harmless, so every checkpoint and validation the file
holds reaches the run exactly once.

Waits are bounded: a request of the worker waits at most ``ANSWER_TIMEOUT`` seconds for
an answer (``ARTIFACT_TIMEOUT`` for an upload); ``start`` waits for the run at most
``start_timeout`` and stops at the first unanswered request, which the first warning
names; ``finish`` waits for delivery at most ``close_timeout``, and only while the store
answers. When the store does not answer the worker backs off (up to ``max_backoff``),
warns once, and keeps everything in the spool. A store that refuses the login (HTTP 401 or
403: wrong or missing credentials) gets one warning of its own, saying how to fix it and that
``sync`` delivers the kept work afterwards.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from .._faults import crash_point
from ..errors import InvalidValueError, TrackingError
from .base import RUN_STATUSES, Tracker, TrackingWarning
from .delivery import (
    ITEM_REFUSALS,
    LOGIN_REFUSALS,
    MAX_METRICS_PER_BATCH,
    RUN_GONE,
    Delivery,
    RunRefused,
    login_refused,
    summary,
)
from .http_limits import bounded, quiet, quiet_store_logs
from .logged_models import checkpoint_key
from .spool import Spool
from .store_uri import StoreUri

ANSWER_TIMEOUT = 5.0  # seconds a request of the worker waits for an answer (an upload: ARTIFACT_TIMEOUT)
ARTIFACT_TIMEOUT = 30.0
#: the answers of a server that refuses the credentials (``--app-name basic-auth``): error code -> HTTP status


class MlflowTracker(Tracker):
    """Track runs in MLflow at ``tracking_uri`` (default: ``MLFLOW_TRACKING_URI`` or MLflow's default).

    Args:
        tracking_uri: an MLflow tracking URI; a relative ``sqlite:///`` path is made absolute.
            Credentials in it (user info, secret query parameters) stay in this process's memory:
            the URI is recorded and shown without them (``store_uri.py``).
        start_timeout: the longest ``start`` waits for the run id before training goes on (the run
            is then created when the store answers); a store that leaves one request unanswered
            for ``ANSWER_TIMEOUT`` seconds ends the wait sooner.
        close_timeout: the longest ``finish`` waits for delivery while the store answers.
        max_backoff: the longest pause between delivery attempts while the store is down.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        start_timeout: float = 10.0,
        close_timeout: float = 60.0,
        max_backoff: float = 30.0,
    ):
        quiet_store_logs()
        self._store = StoreUri.given(tracking_uri or mlflow.get_tracking_uri())
        self.tracking_uri = self._store.public
        self.start_timeout, self.close_timeout, self.max_backoff = start_timeout, close_timeout, max_backoff
        self._spool: Spool | None = None
        self._delivery: Delivery | None = None
        self._key: str | None = None
        self._experiment: str | None = None
        self._client: MlflowClient | None = None
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._held: list[dict[str, Any]] | None = None  # journaled, awaiting elistimator.json's commit
        self._clause: dict[str, Any] | None = None
        self._holder: int | None = None  # the thread whose work is held (the training thread)
        self._deferred: list[dict[str, Any]] = []  # other threads' work during a hold
        self._holding = threading.RLock()  # journal order == queue order
        self._cond = threading.Condition()
        self._marking = threading.Lock()  # the worker writes to the spool only while holding it
        self._worker: threading.Thread | None = None
        self._stopping = False
        self._retry_now = False
        self._failures = 0  # failed delivery attempts, ever
        self._delivered_seq = 0
        self._warned_behind = self._warned_login = False
        self._login_refused = False  # the last failed attempt was a refused login (already warned about)
        self._last_error: str | None = None

    # -- the Tracker interface ----------------------------------------------------------

    def start(
        self,
        spool_root: Path,
        experiment: str,
        run_name: str | None,
        tags: Mapping[str, str],
        resume: Mapping[str, Any] | None = None,
        committed: Callable[[Mapping[str, Any]], bool] | None = None,
    ) -> None:
        if self._spool is not None:
            raise TrackingError("this tracker already started a run; a tracker serves one Elistimator")
        self._open(Spool(spool_root, self.tracking_uri), committed)
        same_store = bool(resume) and resume.get("tracking_uri") == self.tracking_uri
        self._key = resume["run_key"] if same_store else uuid.uuid4().hex
        self._experiment = experiment
        for op in self._queue:  # earlier sessions' undelivered work goes first
            if op["op"] == "start" and op["run"] == self._key:
                op["experiment"] = experiment  # e.g. another name after the first one was deleted
        start = self._append(
            {
                "op": "start",
                "experiment": self._experiment,
                "run_name": run_name,
                "tags": dict(tags),
                "run_id": resume.get("run_id") if same_store else None,
            }
        )
        self._start_worker("elistimator-tracking")
        self._wait_delivered(start["seq"], self.start_timeout)

    def log_params(self, params: Mapping[str, str]) -> None:
        if params:
            self._append({"op": "params", "params": dict(params)})

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if tags:
            self._append({"op": "tags", "tags": dict(tags)})

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._append(
            {
                "op": "metrics",
                "metrics": {k: float(v) for k, v in metrics.items()},
                "step": int(step),
                "timestamp": int(time.time() * 1000),
            }
        )

    def log_input(self, dataset: Mapping[str, str], context: str) -> None:
        self._append({"op": "input", "dataset": dict(dataset), "context": context})

    def log_model_metrics(self, metrics: Mapping[str, float], step: int, files: Mapping[str, str]) -> None:
        self._append(
            {
                "op": "metrics",
                "metrics": {k: float(v) for k, v in metrics.items()},
                "step": int(step),
                "timestamp": int(time.time() * 1000),
                "model_key": checkpoint_key(self._key, step, files),
            }
        )

    def log_checkpoint_model(self, directory: Path, step: int, files: Mapping[str, str]) -> None:
        self._append(
            {
                "op": "logged_model",
                "directory": self._require_started().relative(directory),
                "step": int(step),
                "key": checkpoint_key(self._key, step, files),
            }
        )

    def outbox(self, name: str) -> Path:
        return self._require_started().outbox(name)

    def log_artifacts(self, directory: Path, artifact_path: str) -> None:
        self._append(
            {
                "op": "artifacts",
                "directory": self._require_started().relative(directory),
                "artifact_path": artifact_path,
            }
        )

    def hold(self, clause: Mapping[str, Any]) -> None:
        with self._holding:
            self._clause, self._held, self._holder = dict(clause), [], threading.get_ident()

    def release(self, committed: bool) -> None:
        with self._holding:
            held, deferred = self._held or [], self._deferred
            self._clause, self._held, self._deferred = None, None, []
            if committed and held:
                with self._cond:
                    self._queue.extend(held)
                    self._cond.notify_all()
            for op in deferred:
                self._append(op)

    def finish(self, status: str, error: str | None = None) -> None:
        if status not in RUN_STATUSES:
            raise InvalidValueError(f"status must be one of {RUN_STATUSES}, got {status!r}")
        if self._spool is None:
            return
        last = self._append({"op": "finish", "status": status, "error": error})
        if not self._drain(last["seq"], self.close_timeout) and not self._login_refused:
            left = len(self._spool.pending())
            warnings.warn(
                f"{left} tracking operation(s) could not be delivered to {self.tracking_uri} "
                f"({self._last_error or 'the store did not answer in time'}); they are kept in "
                f"{self._spool.path} and delivered at the next run in this model directory or "
                "with elistimator_tracking.tracking.sync(model_dir)",
                TrackingWarning,
                stacklevel=3,
            )

    def describe(self) -> dict[str, Any] | None:
        if self._spool is None:
            return None
        return {
            "tracking_uri": self.tracking_uri,
            "experiment": self._experiment,
            "run_key": self._key,
            "run_id": self._spool.run_id(self._key),
        }

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait (at most ``timeout`` seconds, and only while the store answers) until everything
        journaled so far is delivered; True when it is."""
        with self._cond:
            last = self._queue[-1]["seq"] if self._queue else 0
        return self._wait_delivered(last, timeout, retry_now=True)

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
        mode: str = "min",
        force: bool = False,
    ) -> tuple[str, str | None]:
        from .registry import register_checkpoint

        if self._spool is not None:
            self.flush(self.close_timeout)
            run_id = self._spool.run_id(self._key)
        if run_id is None:
            raise TrackingError(
                f"cannot register {name!r}: the run does not exist yet in {self.tracking_uri} "
                f"({self._last_error or 'the store has not answered'}); try again when it answers"
            )
        with bounded(), quiet():
            return register_checkpoint(self._mlflow(), run_id, step, model_dir, name, alias, tags, metric, mode, force)

    # -- replay of a spool without a training run (``sync``) -------------------------------

    def deliver_spool(
        self, spool: Spool, timeout: float, committed: Callable[[Mapping[str, Any]], bool] | None = None
    ) -> int:
        """Deliver ``spool``'s pending operations; return how many are still pending."""
        self._open(spool, committed)
        if not self._queue:
            spool.compact()
            return 0
        self._start_worker("elistimator-sync")
        self._drain(self._queue[-1]["seq"], timeout)
        return len(spool.pending())

    # -- journal and waiting ----------------------------------------------------------

    def _open(self, spool: Spool, committed: Callable[[Mapping[str, Any]], bool] | None) -> None:
        """Use ``spool``: settle what a crash left between its journal and elistimator.json, sweep
        stale staging, and queue the pending operations."""
        if committed is not None:
            spool.settle(committed)
        spool.sweep_outbox()
        self._spool, self._delivery = spool, Delivery(self._mlflow, spool, self.tracking_uri)
        self._queue.extend(spool.pending())

    def _require_started(self) -> Spool:
        if self._spool is None:
            raise TrackingError("the tracker has not started a run: Elistimator.setup() starts it")
        return self._spool

    def _append(self, op: dict[str, Any]) -> dict[str, Any]:
        """Journal ``op``; queue it for delivery, or hold it back until the commit it belongs to.

        Work of other threads (system metrics) during a hold waits in memory until ``release``:
        journaled then, its sequence numbers follow the held work's, so the journal stays in the
        order the queue delivers it (a delivered mark never passes undelivered work)."""
        with self._holding:
            if self._clause is not None:
                if threading.get_ident() != self._holder:
                    self._deferred.append(op)
                    return op
                op = self._require_started().append({"run": self._key, **op, "commit": self._clause}, durable=True)
                self._held.append(op)
                return op
            with self._cond:
                op = self._require_started().append({"run": self._key, **op})
                self._queue.append(op)
                self._cond.notify_all()
            return op

    def _start_worker(self, name: str) -> None:
        self._worker = threading.Thread(target=self._work, name=name, daemon=True)
        self._worker.start()

    def _drain(self, last_seq: int, timeout: float) -> bool:
        """Wait (bounded) for delivery up to ``last_seq``, stop the worker, and drop the journal
        when all of it arrived; True when it did. After this the worker writes nothing."""
        delivered = self._wait_delivered(last_seq, timeout, retry_now=True)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        with self._marking:  # a delivery being marked finishes; none starts after
            pass
        if delivered:
            self._spool.compact()
        return delivered

    def _wait_delivered(self, seq: int, timeout: float, retry_now: bool = False) -> bool:
        """Wait until ``seq`` is delivered; give up at ``timeout`` or when an attempt fails (with
        ``retry_now``: try at once, and once more after a failure, which may be a dropped connection)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            failures, allowed = self._failures, int(retry_now)
            if retry_now:
                self._retry_now = True
                self._cond.notify_all()
            while self._delivered_seq < seq:
                remaining = deadline - time.monotonic()
                failed = self._failures - failures
                if remaining <= 0 or failed > allowed:
                    return False
                if failed and retry_now:
                    retry_now, self._retry_now = False, True  # the second try, at once
                    self._cond.notify_all()
                self._cond.wait(remaining)
            return True

    # -- the worker -------------------------------------------------------------------

    def _work(self) -> None:
        backoff = 0.5
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                batch = self._next_batch()
            run_id, notes = None, []
            try:
                # the worker retries on its own terms, not MLflow's
                with bounded(ARTIFACT_TIMEOUT if "directory" in batch[0] else ANSWER_TIMEOUT), quiet():
                    run_id, notes = self._delivery.deliver(batch)
            except RunRefused as refusal:
                notes = [refusal.note] if refusal.note else []
            except Exception as error:  # noqa: BLE001 -- nothing may escape into training
                if not _is_permanent(error, batch[0]):
                    self._fell_behind(error, batch[0])
                    self._pause(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
                notes = [
                    f"the tracking store {self.tracking_uri} refused a {batch[0]['op']!r} operation and it "
                    f"is dropped: {summary(error)}"
                ]
            backoff = 0.5
            crash_point("delivery.sent")
            if not self._mark_delivered(batch, run_id):
                return
            for note in notes:
                warnings.warn(note, TrackingWarning, stacklevel=2)

    def _mark_delivered(self, batch: list[dict[str, Any]], run_id: str | None) -> bool:
        """Record that the store has ``batch``; False when the tracker stopped meanwhile (the spool
        is then no longer this worker's to write)."""
        with self._marking:
            if self._stopping:
                return False
            if run_id is not None:
                self._spool.set_run(batch[0]["run"], run_id)
            self._spool.mark_delivered(batch[-1]["seq"])
            for op in batch:
                if "directory" in op:
                    self._spool.remove_outbox(op["directory"])
        with self._cond:
            for _ in batch:
                self._queue.popleft()
            self._delivered_seq = batch[-1]["seq"]
            self._cond.notify_all()
        return True

    def _next_batch(self) -> list[dict[str, Any]]:
        """The head of the queue; consecutive metric points of one run travel together."""
        head = self._queue[0]
        batch, count = [head], len(head.get("metrics", ()))
        if head["op"] != "metrics":
            return batch
        for op in itertools.islice(self._queue, 1, None):
            if op["op"] != "metrics" or op["run"] != head["run"] or count + len(op["metrics"]) > MAX_METRICS_PER_BATCH:
                break
            batch.append(op)
            count += len(op["metrics"])
        return batch

    def _fell_behind(self, error: Exception, op: Mapping[str, Any]) -> None:
        """One warning (the first failure), given before anyone waiting hears of the failure."""
        timeout = ARTIFACT_TIMEOUT if "directory" in op else ANSWER_TIMEOUT
        self._last_error = (
            f"the store did not answer within {timeout:g} s" if "timed out" in str(error).lower() else summary(error)
        )
        status = LOGIN_REFUSALS.get(getattr(error, "error_code", None))
        self._login_refused = status is not None
        if status is not None and not self._warned_login:
            self._warned_login = True
            warnings.warn(login_refused(self.tracking_uri, status, self._spool.path), TrackingWarning, stacklevel=2)
        elif status is None and not self._warned_behind:
            self._warned_behind = True
            warnings.warn(
                f"tracking to {self.tracking_uri} is behind: {self._last_error}. Training goes on; "
                f"what is not delivered yet is kept in {self._spool.path} and sent when the store "
                "answers (retried in the background, at close(), at the next run in this model "
                "directory, or with elistimator_tracking.tracking.sync(model_dir))",
                TrackingWarning,
                stacklevel=2,
            )
        with self._cond:
            self._failures += 1
            self._cond.notify_all()

    def _pause(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        with self._cond:
            while not self._retry_now and not self._stopping and time.monotonic() < until:
                self._cond.wait(until - time.monotonic())
            self._retry_now = False

    def _mlflow(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self._store.client_uri)
        return self._client


def _is_permanent(error: Exception, op: Mapping[str, Any]) -> bool:
    """Refusals that retrying cannot change; a start is retried unless ``Delivery`` says the store
    refused it (the run must exist first, and e.g. a deleted experiment can be restored)."""
    return op["op"] != "start" and getattr(error, "error_code", None) in ITEM_REFUSALS + RUN_GONE
