"""How each journaled operation reaches MLflow, and which refusals are final.

The tracker's worker thread (``mlflow_tracker.py``) hands batches of journal operations
to ``Delivery.deliver``. Params, tags and metric points travel in batches; when the store
refuses a batch for good (an invalid or too long name, a param logged again with another
value), they go one by one, so only the refused items are lost, each named once. A store
that refuses to create the run (an experiment name it never accepts), or a run deleted
there, ends delivery for that run with one warning: retrying could never succeed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from .._faults import crash_point
from ..errors import InvalidValueError, TrackingError
from .base import TrackingWarning
from .logged_models import create_checkpoint_model, find_checkpoint_model
from .spool import Spool

MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limits
MAX_ITEMS_PER_BATCH = 100
RUN_KEY_TAG = "elistimator.run_key"
ERROR_TAG = "elistimator.error"
#: answers about one item that retrying cannot change: an invalid name, a value too long, a
#: param logged again with another value. Connection failures and server errors are not among them.
ITEM_REFUSALS = ("INVALID_PARAMETER_VALUE", "BAD_REQUEST", "RESOURCE_ALREADY_EXISTS")
#: answers that may say the run itself is gone (deleted in the UI, or unknown to the store; a SQL
#: store says INVALID_PARAMETER_VALUE): the store is asked before a refusal counts as the run's
RUN_GONE = ("RESOURCE_DOES_NOT_EXIST", "INVALID_STATE")


class ExperimentDeleted(TrackingError):
    """The experiment to log to is deleted in the store; runs can't be created in it (restorable)."""


class RunRefused(TrackingError):
    """The store will never take this run's work: it refused to create the run, or the run is gone.
    ``note`` is the warning to give, once (empty for the run's later operations)."""

    def __init__(self, note: str):
        super().__init__(note)
        self.note = note


class Delivery:
    """Delivers journal operations of ``spool`` through ``client()`` (an MlflowClient for the store)."""

    def __init__(self, client: Callable[[], MlflowClient], spool: Spool, tracking_uri: str):
        self._client, self._spool, self.tracking_uri = client, spool, tracking_uri
        self._refused: dict[str, str] = {}  # run key -> why the store will never take its work
        self._orphans: set[str] = set()  # run keys with work but no run and no start: said once
        self._models: dict[str, str | None] = {}  # checkpoint key -> logged model id (None: none found)

    def deliver(self, batch: Sequence[Mapping[str, Any]]) -> tuple[str | None, list[str]]:
        """Send ``batch`` (one operation, or consecutive metric points of one run). Returns the run
        id a ``start`` created or found, and notes on refused items. Raises on failures worth
        retrying; ``RunRefused`` when the run will never take them."""
        op = batch[0]
        if op["run"] in self._refused:
            raise RunRefused("")
        if op["op"] == "start":
            return self._start(op)
        run_id = self._spool.run_id(op["run"])
        if run_id is None:  # no start of it lies ahead (it would be delivered first): the store refused it
            note = (
                ""
                if op["run"] in self._orphans
                else (
                    f"the tracking store {self.tracking_uri} never created the run this work belongs to (it refused "
                    "to, in an earlier session); the work is dropped"
                )
            )
            self._orphans.add(op["run"])
            raise RunRefused(note)
        try:
            return None, self._send(op["op"], batch, run_id)
        except MlflowException as error:
            if error.error_code not in RUN_GONE + ITEM_REFUSALS or not self._gone(run_id):
                raise
            self._refused[op["run"]] = run_id
            raise RunRefused(
                f"the tracking store {self.tracking_uri} refused a {op['op']!r} operation and it is "
                f"dropped: the run {run_id} is deleted or unknown there ({summary(error)}); its "
                "later work is dropped too"
            ) from None

    def _send(self, kind: str, batch: Sequence[Mapping[str, Any]], run_id: str) -> list[str]:
        op, client = batch[0], self._client()
        if kind == "metrics":
            points = [
                Metric(key, value, o["timestamp"], o["step"], model_id=self._model_id(run_id, o.get("model_key")))
                for o in batch
                for key, value in o["metrics"].items()
            ]
            return self.log_items(run_id, "metrics", points, MAX_METRICS_PER_BATCH)
        if kind == "params":
            return self.log_items(run_id, "params", [Param(k, v) for k, v in op["params"].items()])
        if kind == "tags":
            return self.log_items(run_id, "tags", [RunTag(k, v) for k, v in op["tags"].items()])
        if kind == "input":  # the store keeps one input per run and dataset (name, digest): replays are harmless
            client.log_inputs(
                run_id, [DatasetInput(Dataset(**op["dataset"]), [InputTag(MLFLOW_DATASET_CONTEXT, op["context"])])]
            )
            return []
        if kind == "artifacts":
            directory = self._spool.outbox_path(op["directory"])
            if directory.is_dir():  # gone only if an earlier attempt delivered it and then crashed
                client.log_artifacts(run_id, str(directory), op["artifact_path"])
            return []
        if kind == "logged_model":
            directory = self._spool.outbox_path(op["directory"])
            if directory.is_dir():  # gone only if an earlier attempt delivered it and then crashed
                self._models[op["key"]] = create_checkpoint_model(client, run_id, op["step"], directory, op["key"])
            return []
        if kind == "finish":
            if op.get("error"):
                client.set_tag(run_id, ERROR_TAG, op["error"][:5000])
            client.set_terminated(run_id, op["status"])
            return []
        raise InvalidValueError(f"unknown tracking operation {kind!r} in {self._spool.path}")

    def log_items(self, run_id: str, kind: str, items: list[Any], per_batch: int = MAX_ITEMS_PER_BATCH) -> list[str]:
        """Log params, tags or metric points in batches; a batch refused for good goes item by item.
        Returns a note per refused item."""
        client, refused = self._client(), []
        for i in range(0, len(items), per_batch):
            chunk = items[i : i + per_batch]
            try:
                client.log_batch(run_id, **{kind: chunk}, synchronous=True)
                continue
            except MlflowException as error:
                if error.error_code not in ITEM_REFUSALS or self._gone(run_id):
                    raise
            for item in chunk:
                try:
                    client.log_batch(run_id, **{kind: [item]}, synchronous=True)
                except MlflowException as error:
                    if error.error_code not in ITEM_REFUSALS:
                        raise
                    refused.append(
                        f"the tracking store {self.tracking_uri} refused the {kind[:-1]} "
                        f"{item.key!r} and it is dropped (the others are kept): {summary(error)}"
                    )
        return refused

    def _model_id(self, run_id: str, key: str | None) -> str | None:
        """The logged model of checkpoint ``key`` in the run's experiment (None: no key, or none there:
        the points then go to the run only)."""
        if key is not None and key not in self._models:
            experiment_id = self._client().get_run(run_id).info.experiment_id
            model = find_checkpoint_model(self._client(), [experiment_id], key)
            self._models[key] = model.model_id if model is not None else None
        return self._models.get(key) if key is not None else None

    # -- the run ----------------------------------------------------------------------

    def _gone(self, run_id: str) -> bool:
        """Whether the run is deleted in the store or unknown to it (a refusal is then about the run)."""
        try:
            return self._client().get_run(run_id).info.lifecycle_stage != "active"
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                return True
            raise

    def _start(self, op: Mapping[str, Any]) -> tuple[str, list[str]]:
        """The run of ``op``: resumed, found again by its run key, or created (then tagged)."""
        client, key = self._client(), op["run"]
        run_id = self._spool.run_id(key) or op.get("run_id")
        if run_id is not None:
            if self._resume(run_id):
                return run_id, []
            warnings.warn(
                f"the run {run_id} recorded in the model directory is not known to "
                f"{self.tracking_uri} (or was deleted there); a new run is started for it",
                TrackingWarning,
                stacklevel=2,
            )
        experiment_id = self._experiment_id(op["experiment"], key)
        found = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{key}'", max_results=1)
        if found:  # created by an earlier attempt whose answer was lost
            run_id = found[0].info.run_id
        else:
            try:
                run_id = client.create_run(
                    experiment_id, run_name=op.get("run_name"), tags={RUN_KEY_TAG: key}
                ).info.run_id
                crash_point("tracking.run_created")
            except MlflowException as error:
                self._refuse_start(key, error)
        return run_id, self.log_items(run_id, "tags", [RunTag(k, v) for k, v in op.get("tags", {}).items()])

    def _refuse_start(self, key: str, error: MlflowException) -> None:
        if error.error_code not in ITEM_REFUSALS:
            raise error
        self._refused[key] = "refused"
        raise RunRefused(
            f"the tracking store {self.tracking_uri} refused to create the run ({summary(error)}); "
            "nothing of it can be tracked there, so its journaled work is dropped. Training goes "
            "on"
        ) from None

    def _resume(self, run_id: str) -> bool:
        client = self._client()
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

    def _experiment_id(self, name: str, key: str) -> str:
        client = self._client()
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return client.create_experiment(name)
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    self._refuse_start(key, error)
                experiment = client.get_experiment_by_name(name)
        if experiment.lifecycle_stage != "active":
            raise ExperimentDeleted(
                f"the experiment {name!r} (id {experiment.experiment_id}) is deleted in "
                f"{self.tracking_uri}: restore it (mlflow experiments restore --experiment-id "
                f"{experiment.experiment_id}) or pass another experiment= name"
            )
        return experiment.experiment_id


def summary(error: BaseException) -> str:
    """The first line of an error, short."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text[:300]}"


LOGIN_REFUSALS = {"UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403}  # MLflow's error codes -> HTTP status


def login_refused(tracking_uri: str, status: int, kept_in: Path) -> str:
    """The one warning for a server refusing the credentials (401) or the account (403)."""
    fix = (
        "refused the login (HTTP 401, UNAUTHENTICATED): set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
        "to an account of that server"
        if status == 401
        else "refused access (HTTP 403, PERMISSION_DENIED): the account may not write there; ask the server's admin "
        "for permission (EDIT on the experiment) or use another account"
    )
    return (
        f"the tracking store {tracking_uri} {fix}. Training goes on; its tracking is kept in {kept_in} and "
        "delivered, once the server accepts it, by elistimator_tracking.tracking.sync(model_dir) or the next "
        "run in this model directory"
    )
