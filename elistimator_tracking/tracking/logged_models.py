"""Checkpoints as MLflow 3 logged models: one per checkpoint, at its global step, in the run. The
logged model *is* the checkpoint: the run holds no second copy (release 0.1 also uploaded each as
the run artifact ``checkpoints/step-<N>/``; those runs still restore, ``resolve.py``).

MLflow 3 tracks deep-learning checkpoints as *logged models* (``models:/m-<id>``): the run's and
the experiment's "Logged models" tab lists and compares them, metrics linked to a model
(``Metric(model_id=...)``) rank them, and a registered version points at one (registering adds
no copy). Each of ours is an MLflow Model (pyfunc flavor, ``pyfunc_model.py``, models-from-code)
whose artifact ``model_dir`` is the checkpoint's self-contained model directory, so
``mlflow.pyfunc.load_model('models:/m-<id>')`` and ``Elistimator.from_disk('models:/m-<id>')``
both load it. Its tags name the checkpoint for good (``CHECKPOINT_KEY_TAG``: a replay after a
crash finds it again instead of creating it twice), its step, and the sha256 of each of its files
(``CHECKSUMS_TAG``: a remote restore checks the download against the store's database).

What does not change between checkpoints (the MLmodel skeleton: flavor, pip requirements,
environment files, the loader code) is worked out once per process (``Packager``); each
checkpoint then costs copying a few small files and hard-linking its own.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .._faults import crash_point
from .._version import __version__
from ..model_dir import link_tree
from .history import latest_points
from .http_limits import quiet_logger
from .names import (
    CHECKPOINT_KEY_TAG,
    CHECKSUMS_TAG,
    LOGGED_MODEL_TYPE,
    MODEL_DIR_ARTIFACT,
    MODEL_ID_TAG,
    RUN_KEY_TAG,
    STEP_TAG,
    logged_model_name,
    validation_metrics,
)
from .pages import every_page

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")


def checkpoint_key(run_key: str, step: int, files: Mapping[str, str]) -> str:
    """Names one checkpoint of one run for good: a branch that saves the same step again with other
    weights gets another key (the files' checksums differ), a replay of the same one the same key."""
    digest = hashlib.sha256(repr(sorted(files.items())).encode("utf-8")).hexdigest()[:16]
    return f"{run_key}:{step}:{digest}"


def requirements() -> list[str]:
    """The pinned pip requirements of a packaged checkpoint: the versions installed here."""
    pins = [f"elistimator_tracking=={__version__}"]
    for name in ("tensorflow", "tf-keras", "mlflow"):
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


class Packager:
    """Writes checkpoints as MLflow Models; the skeleton (``mlflow.pyfunc.save_model`` of the loader
    code, requirements and environment) is made once, at the first checkpoint."""

    def __init__(self) -> None:
        self._skeleton: Path | None = None

    def package(
        self, model_dir: Path, destination: Path, signature: Any = False, example: Mapping[str, Any] | None = None
    ) -> None:
        """Write the MLflow Model holding ``model_dir`` at ``artifacts/model_dir`` to the new directory
        ``destination``. With a ``signature`` (a registration), MLflow writes it whole."""
        if signature is not False:
            _save_model(model_dir, destination, signature, example)
            return
        shutil.copytree(self._made(), destination, ignore=shutil.ignore_patterns("artifacts"))
        link_tree(model_dir, destination / "artifacts" / MODEL_DIR_ARTIFACT)
        _renamed_model(destination)

    def _made(self) -> Path:
        if self._skeleton is None:
            work = Path(tempfile.mkdtemp(prefix="elistimator-skeleton-"))
            weakref.finalize(self, shutil.rmtree, work, True)
            (work / MODEL_DIR_ARTIFACT).mkdir()
            _save_model(work / MODEL_DIR_ARTIFACT, work / "model", False, None)
            self._skeleton = work / "model"
        return self._skeleton


def _save_model(model_dir: Path, destination: Path, signature: Any, example: Mapping[str, Any] | None) -> None:
    """``mlflow.pyfunc.save_model`` of the loader code with ``model_dir`` as its ``model_dir`` artifact
    (always at ``artifacts/model_dir``, whatever the folder's own name); explicit pip requirements,
    so no dependency inference runs."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="elistimator-package-") as work:
        named = model_dir
        if model_dir.name != MODEL_DIR_ARTIFACT:
            named = Path(work) / MODEL_DIR_ARTIFACT
            link_tree(model_dir, named)
        with quiet_logger("mlflow.pyfunc"), quiet_logger("mlflow.utils.requirements_utils"):
            mlflow.pyfunc.save_model(
                str(destination),
                python_model=str(PYFUNC_CODE),
                signature=signature,
                input_example=example,
                artifacts={MODEL_DIR_ARTIFACT: str(named)},
                pip_requirements=requirements(),
            )


def _renamed_model(destination: Path) -> None:
    """A copied skeleton's MLmodel as a model of its own: a new uuid, creation time and size."""
    from mlflow.models import Model

    model = Model.load(str(destination / "MLmodel"))
    model.model_uuid = uuid.uuid4().hex
    model.utc_time_created = str(datetime.now(timezone.utc).replace(tzinfo=None))
    model.model_size_bytes = sum(f.stat().st_size for f in destination.rglob("*") if f.is_file())
    model.save(str(destination / "MLmodel"))


def create(
    client: Any,
    run_id: str,
    step: int,
    model_dir: Path,
    key: str,
    packager: Packager,
    tags: Mapping[str, str] | None = None,
) -> str:
    """The logged model of one checkpoint (``model_dir``, a one-checkpoint model directory) of run
    ``run_id`` at global ``step``: created, filled, linked to the run and to the run's validation
    metrics at ``step``, and marked READY. Found again by ``key`` when an earlier attempt created
    it. Returns its model id. (The one place a checkpoint becomes a logged model.)"""
    run = client.get_run(run_id)
    model = find(client, [run.info.experiment_id], key)
    if model is not None and str(model.status) == "READY":
        return model.model_id
    if model is None:
        model = client.create_logged_model(
            run.info.experiment_id,
            name=logged_model_name(step),
            source_run_id=run_id,
            model_type=LOGGED_MODEL_TYPE,
            tags={
                CHECKPOINT_KEY_TAG: key,
                STEP_TAG: str(step),
                RUN_KEY_TAG: key.split(":", 1)[0],
                CHECKSUMS_TAG: json.dumps(checksums(model_dir, step), sort_keys=True),
                **(tags or {}),
            },
        )
        crash_point("tracking.model_created")
    with tempfile.TemporaryDirectory(prefix="elistimator-logged-model-") as work:
        packager.package(model_dir, Path(work) / "model")
        client.log_model_artifacts(model.model_id, str(Path(work) / "model"))
    outputs = run.outputs.model_outputs if run.outputs else []
    if not any(o.model_id == model.model_id for o in outputs):
        from mlflow.entities import LoggedModelOutput

        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=step)])
    link_step_metrics(client, run, model.model_id, step)
    client.finalize_logged_model(model.model_id, "READY")
    return model.model_id


def checksums(model_dir: Path, step: int) -> dict[str, str]:
    """The files' sha256 that a one-checkpoint model directory records for its checkpoint at ``step``."""
    data = json.loads((model_dir / "elistimator.json").read_text(encoding="utf-8"))
    return dict(data["checkpoints"][str(step)].get("files", {}))


def update_metadata(client: Any, model_id: str, model_dir: Path) -> None:
    """Replace the ``elistimator.json`` inside a logged model's checkpoint (its validation metrics
    changed); the checkpoint's files are not sent again."""
    with tempfile.TemporaryDirectory(prefix="elistimator-metadata-") as work:
        inner = Path(work) / "artifacts" / MODEL_DIR_ARTIFACT
        inner.mkdir(parents=True)
        shutil.copy2(model_dir / "elistimator.json", inner / "elistimator.json")
        client.log_model_artifacts(model_id, work)


def find(client: Any, experiment_ids: list[str], key: str) -> Any:
    """The logged model tagged with ``key`` (the newest, should there be two), or None."""
    found = client.search_logged_models(
        experiment_ids,
        filter_string=f"tags.`{CHECKPOINT_KEY_TAG}` = '{key}'",
        order_by=[{"field_name": "creation_time", "ascending": False}],
        max_results=1,
    )
    return found[0] if found else None


def run_models(client: Any, experiment_id: str, run_id: str) -> dict[int, Any]:
    """The READY checkpoint models of run ``run_id`` by global step (the newest for a step)."""
    found = every_page(
        client.search_logged_models,
        [experiment_id],
        filter_string=f"source_run_id = '{run_id}'",
        order_by=[{"field_name": "creation_time", "ascending": True}],
    )
    return {int(m.tags[STEP_TAG]): m for m in found if STEP_TAG in m.tags and str(m.status) == "READY"}


def registered(client: Any, run_id: str, model_id: str) -> bool:
    """Whether a registered version uses the logged model ``model_id`` (of run ``run_id``)."""
    versions = every_page(client.search_model_versions, f"run_id = '{run_id}'")
    return any(v.tags.get(MODEL_ID_TAG) == model_id or getattr(v, "model_id", None) == model_id for v in versions)


def delete(client: Any, model_id: str) -> None:
    """Delete a logged model and its files from the store (MLflow's own delete only marks it
    deleted; the files would stay until ``mlflow gc``)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    model = client.get_logged_model(model_id)
    repository = get_artifact_repository(model.artifact_location, tracking_uri=client.tracking_uri)
    if repository.list_artifacts():
        repository.delete_artifacts()
    crash_point("tracking.model_files_deleted")  # a replay finds the model again and marks it deleted
    client.delete_logged_model(model_id)


def link_step_metrics(client: Any, run: Any, model_id: str, step: int) -> None:
    """Link the run's live validation metrics at ``step`` (``history.latest_points``: a retracted
    point is not linked) to the model, with their original timestamps: the run keeps one point each."""
    from mlflow.entities import Metric

    points = []
    for key in validation_metrics(run.data.metrics).values():
        latest = latest_points(client.get_metric_history(run.info.run_id, key)).get(step)
        if latest is not None and not math.isnan(latest.value):
            points.append(Metric(key, latest.value, latest.timestamp, step, model_id=model_id))
    if points:
        client.log_batch(run.info.run_id, metrics=points, synchronous=True)


def describe(client: Any, model_id: str, model_dir: Path) -> None:
    """Give the logged model of ``model_dir`` its signature and input example (``schemas.py``): what a
    registered version shows and ``mlflow models serve`` checks requests against. Only its small
    MLmodel and example files are uploaded again, not the checkpoint. Checkpoints get theirs when
    registered: working it out loads the model."""
    from .schemas import model_signature

    signature, example = model_signature(model_dir)
    if signature is None:
        return
    with tempfile.TemporaryDirectory(prefix="elistimator-signature-") as work:
        packaged, described = Path(work) / "model", Path(work) / "described"
        _save_model(model_dir, packaged, signature, example)
        described.mkdir()
        for item in packaged.iterdir():
            if item.is_file() and (item.name == "MLmodel" or "example" in item.name):
                shutil.copy2(item, described / item.name)
        client.log_model_artifacts(model_id, str(described))
