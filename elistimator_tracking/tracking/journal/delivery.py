"""How each journaled operation reaches MLflow, and which refusals are final.

The worker (``worker.py``) hands ``Delivery.deliver`` a batch: one operation, or consecutive
metric points of one run. Params, tags and metric points travel in batches; when the store
refuses a batch for good (an invalid or too long name, a param logged again with another value)
they go one by one, so only the refused items are lost, each named once. A store that refuses to
create the run, or a run deleted there, ends delivery for that run with one warning: retrying
could never succeed. Everything else raises, and the worker retries later.

``client()`` returns the client to call: an ``MlflowClient``, or in tests a recording client that
takes the same calls. Every call here is one MLflow documents on ``MlflowClient``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from ..._faults import crash_point
from ...errors import TrackingError, TrackingWarning
from .. import logged_models
from ..names import ERROR_TAG, RUN_KEY_TAG
from ..pages import experiment_ids
from .local import LocalCheckpoints
from .ops import Artifacts, DeleteModel, Finish, Input, LoggedModel, Metrics, Op, Params, Start, Tags
from .spool import Spool

MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limits
MAX_ITEMS_PER_BATCH = 100
MAX_ERROR_TAG = 5000
#: answers about one item that retrying cannot change: an invalid name, a value too long, a param
#: logged again with another value. Connection failures and server errors are not among them.
ITEM_REFUSALS = ("INVALID_PARAMETER_VALUE", "BAD_REQUEST", "RESOURCE_ALREADY_EXISTS")
#: answers that may say the run itself is gone (deleted in the UI, or unknown to the store; a SQL
#: store says INVALID_PARAMETER_VALUE): the store is asked before a refusal counts as the run's
RUN_GONE = ("RESOURCE_DOES_NOT_EXIST", "INVALID_STATE")
#: the answers of a server that refuses the credentials (``--app-name basic-auth``): code -> HTTP status
LOGIN_REFUSALS = {"UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403}


class ExperimentDeleted(TrackingError):
    """The experiment to log to is deleted in the store; runs can't be created in it (restorable)."""


class RunRefused(TrackingError):
    """The store will never take this run's work: it refused to create the run, or the run is gone.
    ``note`` is the warning to give, once (empty for the run's later operations)."""

    def __init__(self, note: str):
        super().__init__(note)
        self.note = note


class Delivery:
    """Delivers journal operations of ``spool`` through ``client()``; ``local`` remakes a checkpoint
    whose outbox folder is gone. ``lost`` names, by step, the checkpoints that could not reach the
    store because their files were gone everywhere."""

    def __init__(
        self, client: Callable[[], Any], spool: Spool, tracking_uri: str, local: LocalCheckpoints | None = None
    ):
        self._client, self._spool, self.tracking_uri, self._local = client, spool, tracking_uri, local
        self._refused: dict[str, str] = {}  # run key -> why the store will never take its work
        self._orphans: set[str] = set()  # run keys with work but no run found: said once
        self._models: dict[str, str | None] = {}  # checkpoint key -> logged model id (None: none found)
        self._packager = logged_models.Packager()
        self.lost: list[str] = []

    def deliver(self, batch: Sequence[Op]) -> tuple[str | None, list[str]]:
        """Send ``batch``. Returns the run id a ``start`` created or found, and notes on refused items.
        Raises on failures worth retrying; ``RunRefused`` when the run will never take them."""
        op = batch[0]
        if op.run in self._refused:
            raise RunRefused("")
        if isinstance(op, Start):
            return self._start(op)
        run_id = self._run_id(op.run)
        try:
            return None, self._send(batch, run_id)
        except MlflowException as error:
            if error.error_code not in RUN_GONE + ITEM_REFUSALS or not self._gone(run_id):
                raise
            self._refused[op.run] = run_id
            raise RunRefused(
                f"the tracking store {self.tracking_uri} refused a {op.kind!r} operation and it is dropped: the run "
                f"{run_id} is deleted or unknown there ({summary(error)}); its later work is dropped too"
            ) from None

    def _run_id(self, key: str) -> str:
        """The run id of run key ``key``: as the spool recorded it, else found in the store by its tag
        (``runs.json`` damaged or gone). None found: the store refused to create it, earlier."""
        run_id = self._spool.run_id(key)
        if run_id is None:
            client = self._client()
            experiments = experiment_ids(client)
            found = (
                client.search_runs(experiments, filter_string=f"tags.`{RUN_KEY_TAG}` = '{key}'", max_results=1)
                if experiments
                else []
            )
            if found:
                run_id = found[0].info.run_id
                self._spool.set_run(key, run_id)
        if run_id is None:
            note = (
                ""
                if key in self._orphans
                else (
                    f"the tracking store {self.tracking_uri} holds no run for this work (it refused to create it, "
                    "in an earlier session); the work is dropped"
                )
            )
            self._orphans.add(key)
            raise RunRefused(note)
        return run_id

    def _send(self, batch: Sequence[Op], run_id: str) -> list[str]:
        op, client = batch[0], self._client()
        if isinstance(op, Metrics):
            points = [
                Metric(name, value, o.timestamp, o.step, model_id=self._model_id(run_id, o.model_key))
                for o in batch
                if isinstance(o, Metrics)
                for name, value in o.metrics.items()
            ]
            return self.log_items(run_id, "metrics", points, MAX_METRICS_PER_BATCH)
        if isinstance(op, Params):
            return self.log_items(run_id, "params", [Param(k, v) for k, v in op.params.items()])
        if isinstance(op, Tags):
            return self.log_items(run_id, "tags", [RunTag(k, v) for k, v in op.tags.items()])
        if isinstance(op, Input):  # the store keeps one input per run and dataset (name, digest): replays are harmless
            tags = [InputTag(MLFLOW_DATASET_CONTEXT, op.context)]
            client.log_inputs(run_id, [DatasetInput(Dataset(**op.dataset), tags)])
            return []
        if isinstance(op, Artifacts):
            return self._artifacts(op, run_id)
        if isinstance(op, LoggedModel):
            return self._logged_model(op, run_id)
        if isinstance(op, DeleteModel):
            return self._delete_model(op, run_id)
        if isinstance(op, Finish):
            if op.error:
                client.set_tag(run_id, ERROR_TAG, op.error[:MAX_ERROR_TAG])
            client.set_terminated(run_id, op.status)
            return []
        raise TrackingError(f"no delivery for a {op.kind!r} operation")  # ops.KINDS and this list are the same

    def _artifacts(self, op: Artifacts, run_id: str) -> list[str]:
        directory = self._spool.outbox_path(op.directory)
        if not directory.is_dir():  # gone: delivered by an attempt that crashed before marking it, or removed
            return (
                []
                if self._delivered_before(run_id, op.artifact_path)
                else [self._lose(f"the files for {op.artifact_path}/ of run {run_id}")]
            )
        self._client().log_artifacts(run_id, str(directory), op.artifact_path)
        return []

    def _delivered_before(self, run_id: str, artifact_path: str) -> bool:
        return bool(self._client().list_artifacts(run_id, artifact_path))

    def _logged_model(self, op: LoggedModel, run_id: str) -> list[str]:
        client = self._client()
        directory = self._spool.outbox_path(op.directory)
        if op.metadata_only:
            model_id = self._model_id(run_id, op.key)
            if model_id is not None and directory.is_dir():
                logged_models.update_metadata(client, model_id, directory)
            return []
        if not directory.is_dir():
            model = logged_models.find(client, [client.get_run(run_id).info.experiment_id], op.key)
            if model is not None and str(model.status) == "READY":
                return []  # delivered by an attempt that crashed before marking it
            directory.mkdir(parents=True)
            if self._local is None or not self._local.remake(op.step, op.key, directory):
                directory.rmdir()
                return [self._lose(f"the checkpoint at step {op.step}")]
        self._models[op.key] = logged_models.create(client, run_id, op.step, directory, op.key, self._packager)
        return []

    def _delete_model(self, op: DeleteModel, run_id: str) -> list[str]:
        client = self._client()
        model_id = self._model_id(run_id, op.key)
        if model_id is None:
            return []  # deleted already (a replay), or never delivered
        if logged_models.registered(client, run_id, model_id):
            return [
                f"the checkpoint at step {op.step} stays in {self.tracking_uri}: a registered version uses it "
                "(a registered version's checkpoint is never deleted)"
            ]
        logged_models.delete(client, model_id)
        self._models[op.key] = None
        return []

    def _lose(self, what: str) -> str:
        self.lost.append(what)
        return (
            f"{what} cannot reach {self.tracking_uri}: its outbox folder in {self._spool.path} is gone and the "
            "model directory no longer holds its files; it is reported as lost"
        )

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
                        f"the tracking store {self.tracking_uri} refused the {kind[:-1]} {item.key!r} and "
                        f"it is dropped (the others are kept): {summary(error)}"
                    )
        return refused

    def _model_id(self, run_id: str, key: str | None) -> str | None:
        """The logged model of checkpoint ``key`` in the run's experiment (None: no key, or none there:
        the points then go to the run only)."""
        if key is not None and key not in self._models:
            client = self._client()
            model = logged_models.find(client, [client.get_run(run_id).info.experiment_id], key)
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

    def _start(self, op: Start) -> tuple[str, list[str]]:
        """The run of ``op``: resumed, found again by its run key, or created (then tagged)."""
        client, key = self._client(), op.run
        recorded = self._spool.run_id(key) or op.run_id
        if recorded is not None:
            if self._resume(recorded):
                return recorded, []
            warnings.warn(
                f"the run {recorded} recorded in the model directory is not known to {self.tracking_uri} (or "
                "was deleted there); a new run is started for it",
                TrackingWarning,
                stacklevel=2,
            )
        experiment_id = self._experiment_id(op.experiment, key)
        found = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{key}'", max_results=1)
        if found:  # created by an earlier attempt whose answer was lost
            run_id = found[0].info.run_id
        else:
            try:
                run_id = client.create_run(experiment_id, run_name=op.run_name, tags={RUN_KEY_TAG: key}).info.run_id
                crash_point("tracking.run_created")
            except MlflowException as error:
                self._refuse_start(key, error)
        return run_id, self.log_items(run_id, "tags", [RunTag(k, v) for k, v in op.tags.items()])

    def _refuse_start(self, key: str, error: MlflowException) -> NoReturn:
        if error.error_code not in ITEM_REFUSALS:
            raise error
        self._refused[key] = "refused"
        raise RunRefused(
            f"the tracking store {self.tracking_uri} refused to create the run ({summary(error)}); "
            "nothing of it can be tracked there, so its journaled work is dropped. "
            "Training goes on"
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
    """What went wrong, short and whole: the error's type and its first line; for a connection that
    failed, where to and the innermost reason (``[Errno 111] Connection refused``, ``Remote end
    closed connection without response``) instead of a chain of wrappers cut in the middle."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    caused = text.rfind("(Caused by ")
    if caused >= 0:
        tail = text[caused:]
        errno = re.search(r"\[Errno -?\d+\][^'\")(]*", tail)
        quoted = [a or b for a, b in re.findall(r"'([^']+)'|\"([^\"]+)\"", tail)]
        reason = errno.group(0).strip().rstrip(".:") if errno else (quoted[-1] if quoted else tail[11:60])
        where = re.search(r"host='([^']+)', port=(\d+)", text)
        place = f" from {where.group(1)}:{where.group(2)}" if where else ""
        return f"{type(error).__name__}: no answer{place}: {reason}"
    if "read timed out" in text.lower():
        return f"{type(error).__name__}: the store did not answer in time (read timed out)"
    return f"{type(error).__name__}: {text if len(text) <= 300 else text[:297] + '...'}"


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
