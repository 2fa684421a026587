"""The Model Registry: a checkpoint becomes a registered version that is also an MLflow Model.

A version's files are ``models/step-<N>/`` in the run: an MLmodel (pyfunc flavor, the
model loaded from code in ``pyfunc_model.py``) with the checkpoint's model directory as
its artifact ``model_dir``. So ``models:/<name>@champion`` can be restored with
``Elistimator.from_disk``, loaded with ``mlflow.pyfunc.load_model`` and served with
``mlflow models serve``.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Mapping, Optional

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from .._version import __version__
from ..checkpoints import best_step
from .http_limits import bounded
from .layout import MODEL_DIR_ARTIFACT, model_artifact_path
from .resolve import RunCheckpoints
from .run_info import version_tags

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")


def checked_registration(name: object, alias: object) -> None:
    """Raise ``ValueError`` for a model name or alias the registry would refuse, before anything is
    uploaded (by MLflow's own rules: no ``/`` or ``:`` in a name; aliases of letters, digits, ``_``
    and ``-``, not ``latest`` or ``v<N>``)."""
    from mlflow.utils.validation import (_validate_model_alias_name, _validate_model_alias_name_reserved,
                                         _validate_model_name)
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if alias is not None and not isinstance(alias, str):
        raise ValueError(f"alias must be a string or None, got {alias!r}")
    for what, value, checks in (("name", name, (_validate_model_name,)),
                                ("alias", alias, (_validate_model_alias_name, _validate_model_alias_name_reserved))):
        try:
            for check in checks if value is not None else ():
                check(value)
        except MlflowException as error:
            raise ValueError(f"registered model {what} {value!r} is refused by the Model Registry: "
                             f"{error.message}") from None


def register_model_dir(client: MlflowClient, run_id: str, step: int, model_dir: Path, name: str,
                       alias: Optional[str], tags: Mapping[str, str]) -> str:
    """Log ``model_dir`` (a one-checkpoint model directory) as an MLflow Model in the run and
    register it as a new version of ``name``; point ``alias`` at it. Returns the version."""
    with tempfile.TemporaryDirectory(prefix="elistimator-model-") as work:
        packaged = Path(work) / "model"
        with warnings.catch_warnings():  # MLflow's advice on type hints concerns schema inference we do not use
            warnings.filterwarnings("ignore", message=".*type hint", category=UserWarning)
            mlflow.pyfunc.save_model(str(packaged), python_model=str(PYFUNC_CODE),
                                     artifacts={MODEL_DIR_ARTIFACT: str(model_dir)},
                                     pip_requirements=_requirements())
        client.log_artifacts(run_id, str(packaged), model_artifact_path(step))
    source = f"{client.get_run(run_id).info.artifact_uri}/{model_artifact_path(step)}"
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(name, source=source, run_id=run_id, tags=dict(tags))
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def _requirements() -> list:
    from .._tf import tf
    return [f"elistimator_tracking=={__version__}", f"tensorflow=={tf.__version__}",
            f"tf-keras=={tf.__version__}", f"mlflow=={mlflow.__version__}"]


def register_best(run_id: str, name: str, metric: str = "loss", mode: str = "min", alias: Optional[str] = "champion",
                  tracking_uri: Optional[str] = None, cache_dir: Optional[Path] = None) -> str:
    """Register the best checkpoint a run logged (by validation ``metric`` and ``mode``) as a new
    version of ``name``, pointing ``alias`` at it; for runs whose model directory is elsewhere."""
    checked_registration(name, alias)
    run = RunCheckpoints(run_id, tracking_uri, cache_dir)
    index = run.index()
    step = best_step(index, metric, mode)
    model_dir = run.fetch(step)
    with bounded():
        return register_model_dir(run.client, run.run_id, step, model_dir, name, alias,
                                  version_tags(step, index.metrics(step), metric, mode))
