"""The MLflow tracker: everything is journaled first, then delivered by a worker thread.

The training thread only appends to the spool (a line of JSON, or hard links for
checkpoint files) and returns. One daemon thread delivers the journal in order. When
the store does not answer it backs off (up to ``max_backoff`` seconds), warns once, and
keeps everything in the spool; ``finish`` waits for delivery only while the store is
answering, and never longer than ``close_timeout``.
"""

from __future__ import annotations

import collections
import itertools
import os
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Deque, Dict, List, Mapping, Optional

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..errors import TrackingError
from .base import RUN_STATUSES, Tracker, TrackingWarning
from .http_limits import bounded
from .spool import Spool

MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limits
MAX_PARAMS_PER_BATCH = 100
DELIVERY_TIMEOUT = 30.0  # seconds one HTTP request of the worker waits for an answer
RUN_KEY_TAG = "elistimator.run_key"
ERROR_TAG = "elistimator.error"
# Answers that retrying cannot change: a param logged again with another value, an invalid
# name, a run deleted in the UI. Connection failures and server errors are not among them.
PERMANENT_ERRORS = ("INVALID_PARAMETER_VALUE", "BAD_REQUEST", "RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST",
                    "INVALID_STATE")


class ExperimentDeleted(TrackingError):
    """The experiment to log to is deleted in the store; runs can't be created in it."""


class MlflowTracker(Tracker):
    """Track runs in MLflow at ``tracking_uri`` (default: ``MLFLOW_TRACKING_URI`` or MLflow's default).

    Args:
        tracking_uri: an MLflow tracking URI; a relative ``sqlite:///`` path is made absolute.
        start_timeout: how long ``start`` waits for the run id before training goes on
            (the run is then created when the store answers).
        close_timeout: the longest ``finish`` waits for delivery while the store answers.
        max_backoff: the longest pause between delivery attempts while the store is down.
    """

    def __init__(self, tracking_uri: Optional[str] = None, *, start_timeout: float = 10.0,
                 close_timeout: float = 60.0, max_backoff: float = 30.0):
        self.tracking_uri = _absolute_uri(tracking_uri or mlflow.get_tracking_uri())
        self.start_timeout, self.close_timeout, self.max_backoff = start_timeout, close_timeout, max_backoff
        self._spool: Optional[Spool] = None
        self._key: Optional[str] = None
        self._experiment: Optional[str] = None
        self._client: Optional[MlflowClient] = None
        self._queue: Deque[Dict[str, Any]] = collections.deque()
        self._cond = threading.Condition()
        self._worker: Optional[threading.Thread] = None
        self._stopping = False
        self._retry_now = False
        self._failures = 0  # failed delivery attempts, ever
        self._delivered_seq = 0
        self._warned_behind = False
        self._single_until = 0  # after a refused batch, ops up to this seq go one by one
        self._last_error: Optional[str] = None

    # -- the Tracker interface ----------------------------------------------------------

    def start(self, spool_root: Path, experiment: str, run_name: Optional[str], tags: Mapping[str, str],
              resume: Optional[Mapping[str, Any]] = None) -> None:
        if self._spool is not None:
            raise TrackingError("this tracker already started a run; a tracker serves one Elistimator")
        self._spool = Spool(spool_root, self.tracking_uri)
        self._spool.sweep_outbox()
        same_store = bool(resume) and resume.get("tracking_uri") == self.tracking_uri
        self._key = resume["run_key"] if same_store else uuid.uuid4().hex
        self._experiment = experiment
        for op in self._spool.pending():  # earlier sessions' undelivered work goes first
            if op["op"] == "start" and op["run"] == self._key:
                op["experiment"] = experiment  # e.g. another name after the first one was deleted
            self._queue.append(op)
        start = self._append({"op": "start", "experiment": self._experiment, "run_name": run_name,
                              "tags": dict(tags), "run_id": resume.get("run_id") if same_store else None})
        self._start_worker("elistimator-tracking")
        self._wait_delivered(start["seq"], self.start_timeout)

    def log_params(self, params: Mapping[str, str]) -> None:
        if params:
            self._append({"op": "params", "params": dict(params)})

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if tags:
            self._append({"op": "tags", "tags": dict(tags)})

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._append({"op": "metrics", "metrics": {k: float(v) for k, v in metrics.items()}, "step": int(step),
                      "timestamp": int(time.time() * 1000)})

    def outbox(self, name: str) -> Path:
        return self._require_started().outbox(name)

    def log_artifacts(self, directory: Path, artifact_path: str) -> None:
        self._append({"op": "artifacts", "directory": self._require_started().relative(directory),
                      "artifact_path": artifact_path})

    def finish(self, status: str, error: Optional[str] = None) -> None:
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {RUN_STATUSES}, got {status!r}")
        if self._spool is None:
            return
        last = self._append({"op": "finish", "status": status, "error": error})
        delivered = self._drain(last["seq"], self.close_timeout)
        if not delivered:
            left = len(self._spool.pending())
            warnings.warn(f"{left} tracking operation(s) could not be delivered to {self.tracking_uri} "
                          f"({self._last_error or 'the store did not answer in time'}); they are kept in "
                          f"{self._spool.path} and delivered at the next run in this model directory or "
                          "with elistimator_tracking.tracking.sync(model_dir)", TrackingWarning, stacklevel=3)

    def describe(self) -> Optional[Dict[str, Any]]:
        if self._spool is None:
            return None
        return {"tracking_uri": self.tracking_uri, "experiment": self._experiment, "run_key": self._key,
                "run_id": self._spool.run_id(self._key)}

    @property
    def run_id(self) -> Optional[str]:
        """The MLflow run id, once the store created (or found) the run."""
        return self._spool.run_id(self._key) if self._spool else None

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait (at most ``timeout`` seconds, and only while the store answers) until everything
        journaled so far is delivered; True when it is."""
        with self._cond:
            last = self._queue[-1]["seq"] if self._queue else 0
        return self._wait_delivered(last, timeout, retry_now=True)

    def register(self, step: int, model_dir: Path, name: str, alias: Optional[str],
                 tags: Mapping[str, str], run_id: Optional[str] = None) -> str:
        from .registry import register_model_dir
        if self._spool is not None:
            self.flush(self.close_timeout)
            run_id = self.run_id
        if run_id is None:
            raise TrackingError(f"cannot register {name!r}: the run does not exist yet in {self.tracking_uri} "
                               f"({self._last_error or 'the store has not answered'}); try again when it answers")
        with bounded():
            return register_model_dir(MlflowClient(self.tracking_uri), run_id, step, model_dir, name, alias, tags)

    # -- replay of a spool without a training run (``sync``) -------------------------------

    def deliver_spool(self, spool: Spool, timeout: float) -> int:
        """Deliver ``spool``'s pending operations; return how many are still pending."""
        self._spool = spool
        self._queue.extend(spool.pending())
        if not self._queue:
            spool.compact()
            return 0
        self._start_worker("elistimator-sync")
        self._drain(self._queue[-1]["seq"], timeout)
        return len(spool.pending())

    # -- journal and waiting ----------------------------------------------------------

    def _require_started(self) -> Spool:
        if self._spool is None:
            raise TrackingError("the tracker has not started a run: Elistimator.setup() starts it")
        return self._spool

    def _append(self, op: Dict[str, Any]) -> Dict[str, Any]:
        op = self._require_started().append({"run": self._key, **op})
        with self._cond:
            self._queue.append(op)
            self._cond.notify_all()
        return op

    def _start_worker(self, name: str) -> None:
        self._worker = threading.Thread(target=self._work, name=name, daemon=True)
        self._worker.start()

    def _drain(self, last_seq: int, timeout: float) -> bool:
        """Wait (bounded) for delivery up to ``last_seq``, stop the worker, and drop the journal
        when all of it arrived; True when it did."""
        delivered = self._wait_delivered(last_seq, timeout, retry_now=True)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if delivered:
            self._spool.compact()
        return delivered

    def _wait_delivered(self, seq: int, timeout: float, retry_now: bool = False) -> bool:
        """Wait until ``seq`` is delivered; give up at ``timeout`` or when an attempt fails."""
        deadline = time.monotonic() + timeout
        with self._cond:
            failures = self._failures
            if retry_now:
                self._retry_now = True
                self._cond.notify_all()
            while self._delivered_seq < seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._failures > failures:
                    return False
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
            try:
                with bounded(DELIVERY_TIMEOUT):  # the worker retries on its own terms, not MLflow's
                    self._deliver(batch)
            except Exception as error:  # noqa: BLE001 -- nothing may escape into training
                if _is_permanent(error, batch[0]) and len(batch) > 1:
                    self._single_until = batch[-1]["seq"]  # find the one refused: retry op by op
                    continue
                if _is_permanent(error, batch[0]):
                    self._reject(batch[0], error)
                else:
                    self._fell_behind(error)
                    self._pause(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
            backoff = 0.5
            self._spool.mark_delivered(batch[-1]["seq"])
            for op in batch:
                if op["op"] == "artifacts":
                    self._spool.remove_outbox(op["directory"])
            with self._cond:
                for _ in batch:
                    self._queue.popleft()
                self._delivered_seq = batch[-1]["seq"]
                self._cond.notify_all()

    def _next_batch(self) -> List[Dict[str, Any]]:
        """The head of the queue; consecutive metric points of one run travel together."""
        head = self._queue[0]
        batch, count = [head], len(head.get("metrics", ()))
        if head["op"] != "metrics" or head["seq"] <= self._single_until:
            return batch
        for op in itertools.islice(self._queue, 1, None):
            if op["op"] != "metrics" or op["run"] != head["run"] or count + len(op["metrics"]) > MAX_METRICS_PER_BATCH:
                break
            batch.append(op)
            count += len(op["metrics"])
        return batch

    def _fell_behind(self, error: Exception) -> None:
        self._last_error = _summary(error)
        with self._cond:
            self._failures += 1
            self._cond.notify_all()
        if not self._warned_behind:
            self._warned_behind = True
            warnings.warn(f"tracking to {self.tracking_uri} is behind: {self._last_error}. Training goes on; "
                          f"what is not delivered yet is kept in {self._spool.path} and sent when the store "
                          "answers (retried in the background, at close(), at the next run in this model "
                          "directory, or with elistimator_tracking.tracking.sync(model_dir))", TrackingWarning)

    def _pause(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        with self._cond:
            while not self._retry_now and not self._stopping and time.monotonic() < until:
                self._cond.wait(until - time.monotonic())
            self._retry_now = False

    def _reject(self, op: Dict[str, Any], error: Exception) -> None:
        warnings.warn(f"the tracking store {self.tracking_uri} refused a {op['op']!r} operation and it is "
                      f"dropped: {_summary(error)}", TrackingWarning)

    # -- delivery -----------------------------------------------------------------------

    def _mlflow(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def _deliver(self, batch: List[Dict[str, Any]]) -> None:
        op = batch[0]
        kind = op["op"]
        if kind == "start":
            return self._deliver_start(op)
        client, run_id = self._mlflow(), self._run_id_of(op)
        if kind == "metrics":
            points = [Metric(key, value, o["timestamp"], o["step"]) for o in batch for key, value in o["metrics"].items()]
            client.log_batch(run_id, metrics=points, synchronous=True)
        elif kind == "params":
            items = [Param(key, value) for key, value in op["params"].items()]
            for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
                client.log_batch(run_id, params=items[i:i + MAX_PARAMS_PER_BATCH], synchronous=True)
        elif kind == "tags":
            items = [RunTag(key, value) for key, value in op["tags"].items()]
            for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
                client.log_batch(run_id, tags=items[i:i + MAX_PARAMS_PER_BATCH], synchronous=True)
        elif kind == "artifacts":
            directory = self._spool.outbox_path(op["directory"])
            if directory.is_dir():  # gone only if an earlier attempt delivered it and then crashed
                client.log_artifacts(run_id, str(directory), op["artifact_path"])
        elif kind == "finish":
            if op.get("error"):
                client.set_tag(run_id, ERROR_TAG, op["error"][:5000])
            client.set_terminated(run_id, op["status"])
        else:
            raise ValueError(f"unknown tracking operation {kind!r} in {self._spool.path}")

    def _run_id_of(self, op: Mapping[str, Any]) -> str:
        run_id = self._spool.run_id(op["run"])
        if run_id is None:
            raise TrackingError(f"the run {op['run']} was never created in {self.tracking_uri}")
        return run_id

    def _deliver_start(self, op: Mapping[str, Any]) -> None:
        client, key = self._mlflow(), op["run"]
        run_id = self._spool.run_id(key) or op.get("run_id")
        if run_id is not None:
            if self._resume(run_id):
                self._spool.set_run(key, run_id)
                return
            warnings.warn(f"the run {run_id} recorded in the model directory is not known to "
                          f"{self.tracking_uri} (or was deleted there); a new run is started for it",
                          TrackingWarning)
        experiment_id = self._experiment_id(op["experiment"])
        found = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{key}'", max_results=1)
        if found:  # created by an earlier attempt whose answer was lost
            run = found[0]
        else:
            run = client.create_run(experiment_id, run_name=op.get("run_name"),
                                    tags={**op.get("tags", {}), RUN_KEY_TAG: key})
        self._spool.set_run(key, run.info.run_id)

    def _resume(self, run_id: str) -> bool:
        client = self._mlflow()
        try:
            run = client.get_run(run_id)
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                return False
            raise
        if run.info.lifecycle_stage != "active":
            return False
        client.update_run(run_id, status="RUNNING")
        return True

    def _experiment_id(self, name: str) -> str:
        client = self._mlflow()
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return client.create_experiment(name)
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                experiment = client.get_experiment_by_name(name)
        if experiment.lifecycle_stage != "active":
            raise ExperimentDeleted(f"the experiment {name!r} (id {experiment.experiment_id}) is deleted in "
                                    f"{self.tracking_uri}: restore it (mlflow experiments restore --experiment-id "
                                    f"{experiment.experiment_id}) or pass another experiment= name")
        return experiment.experiment_id


def _absolute_uri(uri: str) -> str:
    """``sqlite:///rel.db`` is relative to the working directory: pin it, so a resumed run finds it."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/") and uri != prefix + ":memory:":
        return prefix + os.path.abspath(uri[len(prefix):])
    return uri


def _is_permanent(error: Exception, op: Mapping[str, Any]) -> bool:
    """Errors that retrying cannot fix; a start is always retried (the run must exist first)."""
    return op["op"] != "start" and getattr(error, "error_code", None) in PERMANENT_ERRORS


def _summary(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text[:300]}"
