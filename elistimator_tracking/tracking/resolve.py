"""Checkpoints beyond the local disk: a run's logged models, or the Model Registry.

``runs:/<run_id>``, ``models:/<name>/<version>`` and ``models:/<name>@<alias>`` resolve to a local
one-checkpoint model directory in the download cache (``download_cache.py``: complete, verified
copies or nothing, reused by the next request). Every store call is bounded
(``http_limits.bounded``): an unreachable server is an error within seconds, not minutes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..checkpoints import CheckpointIndex, CheckpointRecord, Selection, checked_selection, select_step
from ..errors import CheckpointNotFoundError, InvalidValueError, ModelDirectoryError
from ..metadata import METADATA_FILE
from .download_cache import cache_root, cached, download
from .history import live_validations
from .http_limits import bounded
from .logged_models import run_models
from .names import (
    CHECKSUMS_TAG,
    LEGACY_CHECKPOINT_ARTIFACTS,
    LEGACY_STEP_DIR,
    MODEL_DIR_ARTIFACT,
    MODEL_ID_TAG,
    legacy_checkpoint_path,
    parse_source,
)
from .pages import experiment_ids
from .store_uri import StoreUri, require_existing

NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")
RUN_ID_PREFIX = re.compile(r"[0-9a-f]{1,31}")


class RunCheckpoints:
    """The checkpoints one run logged and their live validation metrics; also the
    ``CheckpointStore`` a model directory fetches its pruned checkpoints from.

    A checkpoint is its logged model (``logged_models.py``); runs of release 0.1 hold them as the
    run artifacts ``checkpoints/step-<N>/`` too, or only, and those still restore.

    Args:
        run_id: the run's id, or a unique prefix of it.
        tracking_uri: the store (default ``MLFLOW_TRACKING_URI``, else MLflow's default).
        cache_dir: where ``fetch`` downloads to.

    Raises:
        CheckpointNotFoundError: no run has that id.
        InvalidValueError: a prefix several runs share (the message names them).
        StoreNotFoundError: a local store that does not exist.
    """

    def __init__(self, run_id: str, tracking_uri: str | None = None, cache_dir: Path | None = None):
        store = StoreUri.given(tracking_uri or mlflow.get_tracking_uri())
        require_existing(store)
        self.store, self.tracking_uri = store, store.public
        self.client = MlflowClient(store.client_uri)
        self._cache_dir = cache_dir
        self._sources: dict[int, Any] | None = None
        self._fetched: dict[int, Path] = {}
        self.run = find_run(self.client, run_id, self.tracking_uri)
        self.run_id = self.run.info.run_id
        self.label = f"run {self.run_id}"

    def steps(self) -> list[int]:
        """The steps of the checkpoints the run holds (listed once per instance)."""
        return sorted(self._listed())

    def _listed(self) -> dict[int, Any]:
        """``{step: logged model, or the legacy artifact path}``: a logged model wins."""
        if self._sources is None:
            with bounded():
                legacy = self.client.list_artifacts(self.run_id, LEGACY_CHECKPOINT_ARTIFACTS)
                models = run_models(self.client, self.run.info.experiment_id, self.run_id)
            sources: dict[int, Any] = {
                int(match.group(1)): legacy_checkpoint_path(int(match.group(1)))
                for info in legacy
                if info.is_dir and (match := LEGACY_STEP_DIR.fullmatch(Path(info.path).name))
            }
            sources.update(models)
            self._sources = sources
        return self._sources

    def index(self) -> CheckpointIndex:
        """Every checkpoint the run holds, with the validation metrics the run holds at its step (the
        live ones: ``history.py``)."""
        steps = self.steps()
        if not steps:
            raise CheckpointNotFoundError(
                f"run {self.run_id} in {self.tracking_uri} holds no Elistimator checkpoint "
                "(no logged model of a checkpoint, no checkpoints/step-<N>/ artifacts)"
            )
        with bounded():
            live = live_validations(self.client, self.run)
        records = [CheckpointRecord(step, f"checkpoints/model-{step}", local=False) for step in steps]
        return CheckpointIndex(records, {step: metrics for step, metrics in live.items() if step in steps})

    def fetch(self, step: int) -> Path:
        """The run's checkpoint at ``step`` as a verified local model directory (cached; fetched once
        per instance); ``CheckpointNotFoundError`` naming the steps the run holds when it has none
        there (never saved, or deleted by a retention policy)."""
        if step not in self._fetched:
            source = self._listed().get(step)
            if source is None:  # listed before this step arrived? look again, once
                self._sources = None
                source = self._listed().get(step)
            if source is None:
                raise CheckpointNotFoundError(
                    f"run {self.run_id} in {self.tracking_uri} holds no checkpoint at step "
                    f"{step}; it holds {self.steps()}"
                )
            target = cache_root(self._cache_dir, self.tracking_uri) / "runs" / self.run_id / f"step-{step}"
            label = f"the checkpoint at step {step} of run {self.run_id}"
            if isinstance(source, str):

                def fetch(where: Path, path: str = source) -> str:  # the run's own repository: errors keep their cause
                    location = f"{self.run.info.artifact_uri}/{path}"
                    return str(download(location, where, self.store))

                self._fetched[step] = cached(target, fetch, f"step-{step}", label)
            else:
                self._fetched[step] = cached(
                    target,
                    _model_fetcher(source.artifact_location, self.store, label),
                    MODEL_DIR_ARTIFACT,
                    label,
                    recorded_checksums(source, label),
                )
        return self._fetched[step]


def recorded_checksums(model: Any, label: str) -> dict[str, str] | None:
    """The files' sha256 the tracking store's database recorded for a checkpoint's logged model
    (None for one logged before they were recorded)."""
    text = model.tags.get(CHECKSUMS_TAG)
    if text is None:
        return None
    try:
        checksums = json.loads(text)
    except ValueError:
        raise ModelDirectoryError(f"{label}: the checksums the tracking store recorded are damaged") from None
    if not isinstance(checksums, dict) or not all(isinstance(v, str) for v in checksums.values()):
        raise ModelDirectoryError(f"{label}: the checksums the tracking store recorded are damaged")
    return checksums


def find_run(client: MlflowClient, run_id: str, tracking_uri: str):
    """The run ``run_id`` names: a whole run id, or the start of exactly one (``elistimator runs``
    shows the first 8 characters)."""
    try:
        with bounded():
            return client.get_run(run_id)
    except MlflowException as error:
        if error.error_code not in NOT_FOUND:
            raise
    matches = []
    if RUN_ID_PREFIX.fullmatch(run_id):
        with bounded():
            experiments = experiment_ids(client, view_type=ViewType.ALL)
            matches = (
                client.search_runs(
                    experiments, f"attributes.run_id LIKE '{run_id}%'", run_view_type=ViewType.ALL, max_results=10
                )
                if experiments
                else []
            )
    if len(matches) > 1:
        raise InvalidValueError(
            f"{run_id!r} is the start of several run ids in {tracking_uri}: "
            f"{sorted(run.info.run_id for run in matches)}; give more of it"
        )
    if not matches:
        raise CheckpointNotFoundError(f"there is no run {run_id!r} in {tracking_uri}")
    return matches[0]


def download_model_version(source: str, cache_dir: Path | None = None, tracking_uri: str | None = None) -> Path:
    """``models:/<name>/<version>`` or ``models:/<name>@<alias>`` as a verified local model directory."""
    parts = parse_source(source)
    name, number, alias = parts["name"], parts["version"], parts["alias"]
    if name is None:
        raise InvalidValueError(
            f"{source!r} is not a registered version: expected models:/<name>/<version> or @<alias>"
        )
    store = StoreUri.given(tracking_uri or mlflow.get_tracking_uri())
    require_existing(store)
    uri = store.public
    client = MlflowClient(store.client_uri, registry_uri=store.client_uri)
    try:
        with bounded():
            if alias:
                version = client.get_model_version_by_alias(name, alias)
            else:
                version = client.get_model_version(name, str(number))
    except MlflowException as error:
        if error.error_code in NOT_FOUND:
            with bounded():
                known = [m.name for m in client.search_registered_models(max_results=50)]
            raise CheckpointNotFoundError(
                f"{source} is not in the Model Registry at {uri} "
                f"({error.message.splitlines()[0]}); registered models: "
                f"{known or 'none'}"
            ) from None
        raise
    target = cache_root(cache_dir, uri) / "models" / name / f"version-{version.version}"
    label = f"{source} (version {version.version})"
    if not version.source:
        raise ModelDirectoryError(f"{label} has no source to download (the registry records none)")
    checksums = None
    if version.tags.get(MODEL_ID_TAG):
        with bounded():
            checksums = recorded_checksums(client.get_logged_model(version.tags[MODEL_ID_TAG]), label)
    return cached(target, _model_fetcher(version.source, store, label), MODEL_DIR_ARTIFACT, label, checksums)


def download_logged_model(source: str, cache_dir: Path | None = None, tracking_uri: str | None = None) -> Path:
    """``models:/m-<id>`` (a checkpoint logged as an MLflow 3 logged model) as a verified local model directory."""
    model_id = parse_source(source)["model_id"]
    if model_id is None:
        raise InvalidValueError(f"{source!r} is not a logged model: expected models:/m-<logged model id>")
    store = StoreUri.given(tracking_uri or mlflow.get_tracking_uri())
    client = MlflowClient(store.client_uri)
    try:
        with bounded():
            model = client.get_logged_model(model_id)
    except MlflowException as error:
        if error.error_code in NOT_FOUND:
            raise CheckpointNotFoundError(f"there is no logged model {model_id!r} in {store.public}") from None
        raise
    target = cache_root(cache_dir, store.public) / "logged-models" / model_id
    return cached(
        target,
        _model_fetcher(model.artifact_location, store, source),
        MODEL_DIR_ARTIFACT,
        source,
        recorded_checksums(model, source),
    )


def _model_fetcher(artifact_uri: str, store: StoreUri, label: str) -> Callable[[Path], str]:
    """Downloads an MLflow Model made by ``logged_models.Packager`` (from the store the
    caller named, not the default one) and returns the checkpoint directory inside it."""

    def fetch(where: Path) -> str:
        downloaded = download(artifact_uri, where, store)
        inner = _model_dir_artifact(downloaded, label)
        if inner is None or not (downloaded / inner / METADATA_FILE).is_file():
            raise ModelDirectoryError(
                f"{label} holds no Elistimator checkpoint "
                f"(no MLmodel with a {MODEL_DIR_ARTIFACT!r} artifact holding {METADATA_FILE})"
            )
        return str(downloaded / inner)

    return fetch


def _model_dir_artifact(model: Path, label: str) -> str | None:
    """Where an MLflow Model made by ``logged_models.Packager`` (or, before, by the registry)
    keeps the checkpoint (a relative path)."""
    if not (model / "MLmodel").is_file():
        return None
    try:
        flavor = mlflow.models.Model.load(str(model)).flavors.get("python_function", {})
    except Exception as error:  # noqa: BLE001 -- yaml's errors, MLflow's: the file is not an MLmodel
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelDirectoryError(
            f"the MLmodel file of {label} is not a valid MLmodel (YAML): {reason}; its files in the store are damaged"
        ) from None
    entry = flavor.get("artifacts", {}).get(MODEL_DIR_ARTIFACT, {})
    return entry.get("path") if isinstance(entry, dict) else None


def resolve_source(
    source: str, checkpoint: Selection, metric: str, mode: str, cache_dir: Path | None, tracking_uri: str | None
) -> Path:
    """A remote source as a local, verified model directory holding the one checkpoint selected.

    Args:
        source: ``runs:/<run_id>`` (or a unique prefix), ``models:/<name>/<version>``,
            ``models:/<name>@<alias>`` or ``models:/m-<logged model id>``.
        checkpoint: ``'latest'``, ``'best'`` or a global step (a step only for runs).
        metric: the validation metric ``'best'`` selects by.
        mode: ``'min'``, ``'max'`` or ``'auto'``.
        cache_dir: the download cache (default ``$ELISTIMATOR_CACHE_DIR``, else
            ``~/.cache/elistimator_tracking/downloads``).
        tracking_uri: the store (default ``MLFLOW_TRACKING_URI``, else MLflow's default).

    Returns:
        The verified model directory in the cache (reused by the next call).

    Raises:
        CheckpointNotFoundError: no such run, model, version, alias, step or metric.
        ModelDirectoryError: files that do not match their checksums, or a path leaving the download.
        InvalidValueError: a step asked of a registered version or logged model; a run id prefix
            several runs share.
        StoreNotFoundError: a local store that does not exist.
    """
    checkpoint = checked_selection(checkpoint)
    parts = parse_source(str(source))
    if parts["run"]:
        run = RunCheckpoints(parts["run"], tracking_uri, cache_dir)
        return run.fetch(select_step(run.index(), checkpoint, metric, mode))
    if checkpoint not in ("latest", "best"):
        raise InvalidValueError(
            f"a registered version or logged model holds one checkpoint: checkpoint must be "
            f"'latest' or 'best' for {source}, got {checkpoint!r}"
        )
    if parts["model_id"]:
        return download_logged_model(str(source), cache_dir, tracking_uri)
    return download_model_version(str(source), cache_dir, tracking_uri)
