"""A recording double of ``MlflowClient`` for the journal's delivery logic: the same calls, an
in-memory store, and faults on cue.

It takes exactly the calls ``tracking/journal/delivery.py`` and ``tracking/logged_models.py``
make, keeps what a store keeps (runs by id with params, tags, every metric point, inputs,
artifacts as real files under a folder, logged models with their files and metrics), and behaves
as MLflow's SQL store does where the delivery logic depends on it: a param logged again with
another value is refused (``INVALID_PARAMETER_VALUE``), an exact duplicate metric point is kept
once, a deleted run refuses work, search by tag finds a run again. ``fail(...)`` makes the next
calls fail as a store does: an HTTP 500, a 429, a refused connection, a read timeout, a refused
value, a refused login. Tests of
the same scenario against a real store (``test_delivery.py``) check that the double ends the
same as the real thing.
"""

from __future__ import annotations

import itertools
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import requests
from mlflow.entities import FileInfo, Metric
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    PERMISSION_DENIED,
    REQUEST_LIMIT_EXCEEDED,
    RESOURCE_DOES_NOT_EXIST,
    UNAUTHENTICATED,
)

FAULTS = {
    "500": lambda call: MlflowException(f"API request to {call} failed with error code 500 != 200", INTERNAL_ERROR),
    "429": lambda call: MlflowException(f"API request to {call} failed: too many requests", REQUEST_LIMIT_EXCEEDED),
    "refused": lambda call: requests.exceptions.ConnectionError(
        f"HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: {call} (Caused by "
        "NewConnectionError('<urllib3.connection.HTTPConnection object>: Failed to establish a new connection: "
        "[Errno 111] Connection refused'))"
    ),
    "invalid": lambda call: MlflowException(f"API request to {call} failed: invalid value", INVALID_PARAMETER_VALUE),
    "401": lambda call: MlflowException(f"API request to {call} failed: 401 Unauthorized", UNAUTHENTICATED),
    "403": lambda call: MlflowException(f"API request to {call} failed: 403 Forbidden", PERMISSION_DENIED),
    "timeout": lambda call: requests.exceptions.ReadTimeout(
        "HTTPConnectionPool(host='127.0.0.1', port=9): Read timed out. (read timeout=5.0)"
    ),
}


@dataclass
class Run:
    run_id: str
    experiment_id: str
    name: str | None
    status: str = "RUNNING"
    lifecycle_stage: str = "active"
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    points: list[Metric] = field(default_factory=list)
    inputs: list[Any] = field(default_factory=list)
    model_outputs: list[Any] = field(default_factory=list)


@dataclass
class Model:
    model_id: str
    experiment_id: str
    name: str
    source_run_id: str
    tags: dict[str, str]
    artifact_location: str
    status: str = "PENDING"
    lifecycle_stage: str = "active"
    creation_time: int = 0


class RecordingClient:
    """An in-memory MLflow store behind ``MlflowClient``'s calls; ``calls`` lists every call made."""

    def __init__(self, root: Path):
        self.root = root
        self.tracking_uri = f"file://{root}"
        self.experiments: dict[str, SimpleNamespace] = {}
        self.runs: dict[str, Run] = {}
        self.models: dict[str, Model] = {}
        self.versions: list[SimpleNamespace] = []
        self.calls: list[str] = []
        self._faults: list[tuple[str | None, str]] = []
        self._ids = itertools.count(1)

    # -- faults -------------------------------------------------------------------------------

    def fail(self, kind: str, times: int = 1, on: str | None = None) -> None:
        """The next ``times`` calls (of method ``on``, or any) fail with ``kind`` (a key of FAULTS)."""
        self._faults.extend([(on, kind)] * times)

    def heal(self) -> None:
        """The faults still due end: every later call succeeds."""
        self._faults.clear()

    def _call(self, name: str) -> None:
        self.calls.append(name)
        for i, (on, kind) in enumerate(self._faults):
            if on is None or on == name:
                del self._faults[i]
                raise FAULTS[kind](name)

    # -- experiments and runs ------------------------------------------------------------------

    def search_experiments(self, **_: Any) -> list[SimpleNamespace]:
        self._call("search_experiments")
        return _Page(self.experiments.values())

    def get_experiment_by_name(self, name: str) -> SimpleNamespace | None:
        self._call("get_experiment_by_name")
        return next((e for e in self.experiments.values() if e.name == name), None)

    def create_experiment(self, name: str) -> str:
        self._call("create_experiment")
        experiment_id = str(len(self.experiments) + 1)
        self.experiments[experiment_id] = SimpleNamespace(
            experiment_id=experiment_id, name=name, lifecycle_stage="active"
        )
        return experiment_id

    def create_run(self, experiment_id: str, run_name: str | None = None, tags: dict | None = None) -> SimpleNamespace:
        self._call("create_run")
        run = Run(f"run{next(self._ids):04d}", experiment_id, run_name, tags=dict(tags or {}))
        self.runs[run.run_id] = run
        return SimpleNamespace(info=SimpleNamespace(run_id=run.run_id))

    def search_runs(
        self, experiment_ids: list[str], filter_string: str = "", max_results: int = 1000, **_: Any
    ) -> list[SimpleNamespace]:
        self._call("search_runs")
        key, value = re.fullmatch(r"tags\.`(.+)` = '(.*)'", filter_string).groups()  # type: ignore[union-attr]
        found = [
            r
            for r in self.runs.values()
            if r.experiment_id in experiment_ids and r.tags.get(key) == value and r.lifecycle_stage == "active"
        ]
        return [self._view(r) for r in found[:max_results]]

    def get_run(self, run_id: str) -> SimpleNamespace:
        self._call("get_run")
        return self._view(self._run(run_id, active=False))

    def update_run(self, run_id: str, status: str) -> None:
        self._call("update_run")
        self._run(run_id).status = status

    def set_terminated(self, run_id: str, status: str) -> None:
        self._call("set_terminated")
        self._run(run_id).status = status

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self._call("set_tag")
        self._run(run_id).tags[key] = value

    def delete_run(self, run_id: str) -> None:
        self.runs[run_id].lifecycle_stage = "deleted"

    def log_batch(self, run_id: str, metrics=(), params=(), tags=(), synchronous: bool = True) -> None:
        self._call("log_batch")
        run = self._run(run_id)
        for param in params:
            if param.key in run.params and run.params[param.key] != param.value:
                raise MlflowException(
                    f"Changing param values is not allowed. Param with key='{param.key}' was already "
                    f"logged with value='{run.params[param.key]}'",
                    INVALID_PARAMETER_VALUE,
                )
            if not re.fullmatch(r"[/\w.\- :]{1,250}", param.key):
                raise MlflowException(f"Invalid value {param.key!r} for parameter 'key'", INVALID_PARAMETER_VALUE)
        for param in params:
            run.params[param.key] = param.value
        run.tags.update({tag.key: tag.value for tag in tags})
        seen = {(m.key, m.timestamp, m.step, repr(m.value)) for m in run.points}
        for point in metrics:
            if (point.key, point.timestamp, point.step, repr(point.value)) not in seen:
                run.points.append(point)
                seen.add((point.key, point.timestamp, point.step, repr(point.value)))

    def log_inputs(self, run_id: str, datasets: list) -> None:
        self._call("log_inputs")
        run = self._run(run_id)
        for dataset in datasets:
            if all(
                (d.dataset.name, d.dataset.digest) != (dataset.dataset.name, dataset.dataset.digest) for d in run.inputs
            ):
                run.inputs.append(dataset)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        self._call("get_metric_history")
        return [m for m in self._run(run_id, active=False).points if m.key == key]

    # -- artifacts ----------------------------------------------------------------------------

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str | None = None) -> None:
        self._call("log_artifacts")
        self._run(run_id)
        shutil.copytree(local_dir, self.root / "runs" / run_id / (artifact_path or ""), dirs_exist_ok=True)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        self._call("list_artifacts")
        folder = self.root / "runs" / run_id / (path or "")
        if not folder.is_dir():
            return []
        return [FileInfo(str(Path(path or "") / item.name), item.is_dir(), None) for item in sorted(folder.iterdir())]

    # -- logged models ---------------------------------------------------------------------------

    def create_logged_model(
        self, experiment_id: str, name: str, source_run_id: str, model_type: str, tags: dict
    ) -> Model:
        self._call("create_logged_model")
        model_id = f"m-{next(self._ids):032x}"
        location = self.root / "models" / model_id
        model = Model(
            model_id,
            experiment_id,
            name,
            source_run_id,
            dict(tags),
            f"file://{location}",
            creation_time=time.monotonic_ns(),
        )
        self.models[model_id] = model
        return model

    def log_model_artifacts(self, model_id: str, local_dir: str) -> None:
        self._call("log_model_artifacts")
        shutil.copytree(local_dir, self.root / "models" / model_id, dirs_exist_ok=True)

    def log_outputs(self, run_id: str, models: list) -> None:
        self._call("log_outputs")
        self._run(run_id).model_outputs.extend(models)

    def finalize_logged_model(self, model_id: str, status: str) -> None:
        self._call("finalize_logged_model")
        self.models[model_id].status = status

    def get_logged_model(self, model_id: str) -> Model:
        self._call("get_logged_model")
        model = self.models.get(model_id)
        if model is None or model.lifecycle_stage != "active":
            raise MlflowException(f"Logged model {model_id} not found", RESOURCE_DOES_NOT_EXIST)
        return model

    def delete_logged_model(self, model_id: str) -> None:
        self._call("delete_logged_model")
        self.models[model_id].lifecycle_stage = "deleted"

    def search_logged_models(
        self,
        experiment_ids: list[str],
        filter_string: str = "",
        order_by=None,
        max_results: int | None = None,
        page_token=None,
    ) -> list[Model]:
        self._call("search_logged_models")
        found = [m for m in self.models.values() if m.experiment_id in experiment_ids and m.lifecycle_stage == "active"]
        tag = re.fullmatch(r"tags\.`(.+)` = '(.*)'", filter_string)
        run = re.fullmatch(r"source_run_id = '(.*)'", filter_string)
        if tag:
            found = [m for m in found if m.tags.get(tag.group(1)) == tag.group(2)]
        elif run:
            found = [m for m in found if m.source_run_id == run.group(1)]
        descending = bool(order_by) and not order_by[0].get("ascending", True)
        found.sort(key=lambda m: m.creation_time, reverse=descending)
        page = _Page(found[:max_results] if max_results else found)
        return page

    def search_model_versions(self, filter_string: str, page_token=None) -> list[SimpleNamespace]:
        self._call("search_model_versions")
        run_id = re.fullmatch(r"run_id = '(.*)'", filter_string).group(1)  # type: ignore[union-attr]
        return _Page(v for v in self.versions if v.run_id == run_id)

    # -- helpers --------------------------------------------------------------------------------

    def _run(self, run_id: str, active: bool = True) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            raise MlflowException(f"Run '{run_id}' not found", RESOURCE_DOES_NOT_EXIST)
        if active and run.lifecycle_stage != "active":
            raise MlflowException(
                f"The run {run_id} must be in the 'active' state. Current state is deleted.", INVALID_PARAMETER_VALUE
            )
        return run

    def _view(self, run: Run) -> SimpleNamespace:
        latest: dict[str, float] = {}
        for point in sorted(run.points, key=lambda m: (m.step, m.timestamp)):
            latest[point.key] = point.value
        return SimpleNamespace(
            info=SimpleNamespace(
                run_id=run.run_id,
                experiment_id=run.experiment_id,
                status=run.status,
                lifecycle_stage=run.lifecycle_stage,
                run_name=run.name,
            ),
            data=SimpleNamespace(params=dict(run.params), tags=dict(run.tags), metrics=latest),
            outputs=SimpleNamespace(model_outputs=list(run.model_outputs)),
        )


class _Page(list):
    token = None
