"""The Model Registry: a checkpoint's logged model becomes a registered version, and an alias
moves only to a better one.

A version's source is the checkpoint's MLflow 3 logged model (its artifacts; the version's
``elistimator.model_id`` tag names it, ``models:/m-<id>``; see ``logged_models.py``), its run is the
checkpoint's run, and ``models:/<name>@champion``
can be restored with ``Elistimator.from_disk``, loaded with ``mlflow.pyfunc.load_model`` and
served with ``mlflow models serve``. A checkpoint of a run logged before checkpoints were logged
models (only ``checkpoints/step-<N>/``) gets its logged model when it is first registered.

The alias rule: every call registers a new version; the alias (``champion``) moves to it only
when its validation metric beats the metric of the version the alias points at, in the
selection mode (a tie keeps the current one), or when no version has the alias yet, or when
the version it points at recorded no value of that metric. A new version without the metric
never takes the alias. ``force=True`` moves it anyway. When the alias stays, the returned note says
why; each caller adds how to move it anyway in its own words (``FORCE_HINT`` for Python callers, the
``elistimator register`` command its ``--force``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from .. import metadata as metadata_file
from ..checkpoints import best_step
from ..criterion import Criterion
from ..errors import InvalidValueError
from ..model_dir import ModelDirectory
from . import logged_models
from .http_limits import bounded, quiet
from .names import MODEL_ID_TAG, RUN_KEY_TAG, VALIDATION
from .names import metric as metric_name
from .resolve import NOT_FOUND, RunCheckpoints
from .run_info import version_tags


def checked_registration(name: object, alias: object) -> None:
    """Raise ``ValueError`` for a model name or alias the registry would refuse, before anything is
    uploaded (by MLflow's own rules: aliases of letters, digits, ``_`` and ``-``, not ``latest`` or
    ``v<N>``; and no ``/`` or ``:`` in a name, checked here too: MLflow 3.10 accepts them)."""
    from mlflow.utils.validation import (
        _validate_model_alias_name,
        _validate_model_alias_name_reserved,
        _validate_model_name,
    )

    if not isinstance(name, str) or not name.strip():
        raise InvalidValueError(f"name must be a non-empty string, got {name!r}")
    if alias is not None and not isinstance(alias, str):
        raise InvalidValueError(f"alias must be a string or None, got {alias!r}")
    if "/" in name or ":" in name:  # MLflow refuses them from 3.11 on; models:/<name>/<version> needs it
        raise InvalidValueError(
            f"registered model name {name!r} is refused: names cannot contain '/' or ':' "
            "(models:/<name>/<version> and models:/<name>@<alias> would not name it)"
        )
    for what, value, checks in (
        ("name", name, (_validate_model_name,)),
        ("alias", alias, (_validate_model_alias_name, _validate_model_alias_name_reserved)),
    ):
        if value is None:
            continue
        try:
            for check in checks:
                check(value)
        except MlflowException as error:
            raise InvalidValueError(
                f"registered model {what} {value!r} is refused by the Model Registry: {error.message}"
            ) from None


def register_checkpoint(
    client: MlflowClient,
    run_id: str,
    step: int,
    model_dir: Path,
    name: str,
    alias: str | None,
    tags: Mapping[str, str],
    criterion: Criterion,
    force: bool = False,
) -> tuple[str, str | None]:
    """Register the logged model of the checkpoint ``model_dir`` (one checkpoint of run ``run_id`` at
    ``step``; its logged model is created when the run has none) as a new version of ``name``,
    and move ``alias`` by the alias rule. Returns the version and, when the alias stayed, why."""
    run = client.get_run(run_id)
    files = metadata_file.read(ModelDirectory(model_dir)).index.records[step].files
    key = logged_models.checkpoint_key(run.data.tags.get(RUN_KEY_TAG, run_id), step, files)
    model_id = logged_models.create(client, run_id, step, model_dir, key, logged_models.Packager())
    logged_models.describe(client, model_id, model_dir)  # its signature and input example
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    # the source is the logged model's artifact location, not models:/<id>: a SQL registry resolves that
    # through MLflow's global tracking URI, which need not be this store (MLflow's own TODO)
    source = client.get_logged_model(model_id).artifact_location
    version = str(
        client.create_model_version(
            name, source=source, run_id=run_id, model_id=model_id, tags={**tags, MODEL_ID_TAG: model_id}
        ).version
    )
    note = None if not alias else alias_kept(client, name, alias, version, tags, criterion, force)
    if alias and note is None:
        client.set_registered_model_alias(name, alias, version)
    return version, note


#: how a Python caller moves an alias the rule kept (the command line says ``--force``)
FORCE_HINT = "force=True moves it anyway"


def alias_kept(
    client: MlflowClient,
    name: str,
    alias: str,
    version: str,
    tags: Mapping[str, str],
    criterion: Criterion,
    force: bool,
) -> str | None:
    """Why ``alias`` stays where it is rather than moving to the new ``version`` (tagged ``tags``);
    None when it moves (see the module's alias rule)."""
    if force:
        return None
    key = metric_name(VALIDATION, criterion.metric)
    new = _value(tags.get(key))
    if new is None:
        return f"version {version} of {name!r} recorded no {key}: @{alias} is left where it is"
    try:
        current = client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if error.error_code in NOT_FOUND:
            return None
        raise
    old = _value(current.tags.get(key))
    if old is None or Criterion(criterion.metric, criterion.mode).improves(new, old):
        return None
    return (
        f"@{alias} stays on version {current.version} of {name!r}: its {key} {old:.6g} is at least as good as "
        f"version {version}'s {new:.6g} ({criterion.direction}; a tie keeps the current one)"
    )


def _value(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return None if value is None or math.isnan(value) else value


def register_best(
    run_id: str,
    name: str,
    metric: str = "loss",
    mode: str = "auto",
    alias: str | None = "champion",
    tracking_uri: str | None = None,
    cache_dir: Path | None = None,
    force: bool = False,
) -> tuple[str, str | None]:
    """Register the best checkpoint a run logged as a new version of ``name``, moving ``alias`` by the
    alias rule (only to a better version); for runs whose model directory is elsewhere.

    Args:
        run_id: the run's id, or a unique prefix of it (``elistimator runs`` prints 8 characters).
        name: the registered model's name.
        metric: the validation metric that picks the best checkpoint, and judges the alias.
        mode: ``'min'``, ``'max'`` or ``'auto'``.
        alias: the alias (None: none).
        tracking_uri: the store (default ``MLFLOW_TRACKING_URI``, else MLflow's default).
        cache_dir: where the checkpoint is downloaded to when its logged model must be made.
        force: move the alias whatever the metric says.

    Returns:
        ``(version, note)``: the new version's number, and None when the alias moved to it, else why
        it stayed (``force=True`` moves it anyway).

    Raises:
        InvalidValueError: a name or alias the registry refuses, an unknown ``mode``, an ambiguous prefix.
        CheckpointNotFoundError: no such run, or no checkpoint with a validation of ``metric``.
        StoreNotFoundError: a local store that does not exist.
    """
    checked_registration(name, alias)
    criterion = Criterion(metric, mode)
    run = RunCheckpoints(run_id, tracking_uri, cache_dir)
    index = run.index()
    step = best_step(index, criterion.metric, criterion.mode)
    model_dir = run.fetch(step)
    with bounded(), quiet():
        return register_checkpoint(
            run.client,
            run.run_id,
            step,
            model_dir,
            name,
            alias,
            version_tags(step, index.metrics(step), criterion),
            criterion,
            force,
        )
