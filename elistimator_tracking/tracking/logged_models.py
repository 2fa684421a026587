"""Checkpoints as MLflow 3 logged models: one per checkpoint, at its global step, in the run.

MLflow 3 tracks deep-learning checkpoints as *logged models* (``models:/m-<id>``): the run's
and the experiment's "Logged models" tab lists and compares them, metrics linked to a model
(``Metric(model_id=...)``) rank them (``search_logged_models(order_by=[{"field_name":
"metrics.validation/loss"}])``), and a registered version can point at one. Each of ours is
an MLflow Model (pyfunc flavor, ``pyfunc_model.py``, pip requirements pinned so that no
dependency inference runs) whose artifact ``model_dir`` is the checkpoint's self-contained
model directory. So ``mlflow.pyfunc.load_model('models:/m-<id>')`` and
``Elistimator.from_disk('models:/m-<id>')`` both load it.

The tracker's worker thread calls ``create_checkpoint_model`` for a journaled ``logged_model``
operation. A replay (after a crash) finds the model again by its ``elistimator.checkpoint_key``
tag instead of creating it twice.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import LoggedModel, LoggedModelOutput, Metric
from mlflow.tracking import MlflowClient

from .._faults import crash_point
from .._version import __version__
from ..model_dir import link_tree
from .http_limits import quiet_logger
from .layout import MODEL_DIR_ARTIFACT

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
KEY_TAG = "elistimator.checkpoint_key"
STEP_TAG = "elistimator.step"
RUN_KEY_TAG = "elistimator.run_key"


def checkpoint_key(run_key: str, step: int, files: Mapping[str, str]) -> str:
    """Names one checkpoint of one run for good: a branch that saves the same step again with other
    weights gets another key (the files' checksums differ), a replay of the same one the same key."""
    digest = hashlib.sha256(repr(sorted(files.items())).encode("utf-8")).hexdigest()[:16]
    return f"{run_key}:{step}:{digest}"


def package_checkpoint(
    model_dir: Path, destination: Path, signature: Any = False, example: Mapping[str, Any] | None = None
) -> None:
    """Write the MLflow Model (pyfunc, models-from-code) holding ``model_dir`` as its ``model_dir``
    artifact (always at ``artifacts/model_dir``, whatever the folder's own name) to the new directory
    ``destination``; pip requirements are explicit (no inference). ``signature=False``: none (MLflow's
    inference would only log that it cannot infer one from the predict hint)."""
    with tempfile.TemporaryDirectory(prefix="elistimator-package-") as work:
        named = model_dir
        if model_dir.name != MODEL_DIR_ARTIFACT:
            named = Path(work) / MODEL_DIR_ARTIFACT
            link_tree(model_dir, named)
        mlflow.pyfunc.save_model(
            str(destination),
            python_model=str(PYFUNC_CODE),
            signature=signature,
            input_example=example,
            artifacts={MODEL_DIR_ARTIFACT: str(named)},
            pip_requirements=requirements(),
        )


def describe_checkpoint_model(client: MlflowClient, model_id: str, model_dir: Path) -> None:
    """Give the logged model of ``model_dir`` its signature and input example (``schemas.py``): what a
    registered version shows and ``mlflow models serve`` checks requests against. Only its small
    MLmodel and example files are uploaded again (over the ones without a signature), not the
    checkpoint. Checkpoints get theirs when registered: working it out loads the model."""
    from .schemas import model_signature

    signature, example = model_signature(model_dir)
    if signature is None:
        return
    with tempfile.TemporaryDirectory(prefix="elistimator-signature-") as work:
        packaged, described = Path(work) / "model", Path(work) / "described"
        with quiet_logger("mlflow.pyfunc"):  # "Validating input example against model signature"
            package_checkpoint(model_dir, packaged, signature, example)
        described.mkdir()
        for item in packaged.iterdir():
            if item.is_file() and (item.name == "MLmodel" or "example" in item.name):
                shutil.copy2(item, described / item.name)
        client.log_model_artifacts(model_id, str(described))


def requirements() -> list[str]:
    """The pinned pip requirements of a packaged checkpoint."""
    from .._tf import tf

    return [
        f"elistimator_tracking=={__version__}",
        f"tensorflow=={tf.__version__}",
        f"tf-keras=={tf.__version__}",
        f"mlflow=={mlflow.__version__}",
    ]


def create_checkpoint_model(
    client: MlflowClient, run_id: str, step: int, model_dir: Path, key: str, tags: Mapping[str, str] | None = None
) -> str:
    """The logged model of one checkpoint (``model_dir``, a one-checkpoint model directory) of run
    ``run_id`` at global ``step``: created, filled, linked to the run and to the run's validation
    metrics at ``step``, and marked READY. Found again by ``key`` when an earlier attempt created
    it. Returns its model id. (The one place a checkpoint becomes a logged model.)"""
    run = client.get_run(run_id)
    model = find_checkpoint_model(client, [run.info.experiment_id], key)
    if model is not None and str(model.status) == "READY":
        return model.model_id
    if model is None:
        model = client.create_logged_model(
            run.info.experiment_id,
            name=f"step-{step}",
            source_run_id=run_id,
            tags={KEY_TAG: key, STEP_TAG: str(step), RUN_KEY_TAG: key.split(":", 1)[0], **(tags or {})},
            model_type="elistimator-checkpoint",
        )
        crash_point("tracking.model_created")
    with tempfile.TemporaryDirectory(prefix="elistimator-logged-model-") as work:
        package_checkpoint(model_dir, Path(work) / "model")
        client.log_model_artifacts(model.model_id, str(Path(work) / "model"))
    outputs = run.outputs.model_outputs if run.outputs else []
    if not any(o.model_id == model.model_id for o in outputs):
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=step)])
    link_step_metrics(client, run, model.model_id, step)
    client.finalize_logged_model(model.model_id, "READY")
    return model.model_id


def find_checkpoint_model(client: MlflowClient, experiment_ids: list[str], key: str) -> LoggedModel | None:
    """The logged model tagged with ``key`` (the newest, should there be two), or None."""
    found = client.search_logged_models(
        experiment_ids,
        filter_string=f"tags.`{KEY_TAG}` = '{key}'",
        order_by=[{"field_name": "creation_time", "ascending": False}],
        max_results=1,
    )
    return found[0] if found else None


def link_step_metrics(client: MlflowClient, run, model_id: str, step: int) -> None:
    """Link the run's validation metrics at ``step`` (their latest points, NaN excluded) to the model,
    with their original timestamps: the run keeps one point each."""
    points = []
    for name in run.data.metrics:
        if name.startswith("validation/"):
            at_step = [m for m in client.get_metric_history(run.info.run_id, name) if m.step == step]
            if at_step:
                latest = max(at_step, key=lambda m: m.timestamp)
                if latest.value == latest.value:  # not NaN: a branch retracts a point with a NaN
                    points.append(Metric(name, latest.value, latest.timestamp, step, model_id=model_id))
    if points:
        client.log_batch(run.info.run_id, metrics=points, synchronous=True)


def run_checkpoint_models(client: MlflowClient, experiment_id: str, run_id: str) -> dict[int, LoggedModel]:
    """The READY checkpoint models of run ``run_id`` by global step (the newest for a step)."""
    models: dict[int, LoggedModel] = {}
    token = None
    while True:
        page = client.search_logged_models(
            [experiment_id],
            filter_string=f"source_run_id = '{run_id}'",
            order_by=[{"field_name": "creation_time", "ascending": True}],
            page_token=token,
        )
        for model in page:
            if STEP_TAG in model.tags and str(model.status) == "READY":
                models[int(model.tags[STEP_TAG])] = model
        token = page.token
        if not token:
            return models
