"""The study in MLflow: one parent run for the whole study, however many workers run it, and the best
trial written onto it whenever a trial finishes.

**One parent.** The study's storage decides which run is the parent: a worker that finds none makes
a candidate run and claims it by inserting the study's system attribute ``elistimator:sweep`` as a
new row. Optuna's table holds one row per study and key (a unique constraint, in SQLite and
PostgreSQL alike), so of two workers claiming at once one insert fails; the loser deletes its
candidate and adopts the winner's. ``set_study_system_attr`` would not do: it overwrites a row that
exists. Storages other than Optuna's RDB storage (in memory: one process) take a plain write.

**The best, current.** After each finished trial the worker that ran it reads every trial from the
storage (other workers' too) and writes the best onto the parent: tags for the trial, its value,
params and run id, and the metric ``best_value`` at step = trials finished so far (so a slower
worker's older view never becomes the metric's latest value, and never overwrites newer tags).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import optuna
from mlflow.entities import Metric, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from ..errors import NotFoundError
from ..tracking.http_limits import bounded, quiet
from ..tracking.names import (
    BEST_PARAMS_TAG,
    BEST_RUN_TAG,
    BEST_TRIAL_TAG,
    BEST_VALUE,
    BEST_VALUE_TAG,
    STUDY_DIRECTION_TAG,
    STUDY_FINISHED_TRIALS_TAG,
    STUDY_METRIC_TAG,
    STUDY_PRUNER_TAG,
    STUDY_SAMPLER_TAG,
    STUDY_SPACE_TAG,
    STUDY_TAG,
    best_param_tag,
)
from ..tracking.run_info import redacted
from . import space as search_space

#: the study's system attribute naming its MLflow side: parent run, experiment, store, metric
SWEEP_ATTR = "elistimator:sweep"
#: a trial's user attributes (a retried trial inherits them: Optuna's retry callback copies them)
MODEL_DIR_ATTR = "elistimator:model_dir"
RUN_ID_ATTR = "elistimator:run_id"


def recorded(study: optuna.Study) -> dict[str, Any] | None:
    """What the study's storage holds of its MLflow side (None: no sweep claimed it yet)."""
    return _backend(study).get_study_system_attrs(study._study_id).get(SWEEP_ATTR)


def claim(study: optuna.Study, client: MlflowClient, record: Mapping[str, Any], tags: Mapping[str, str]) -> dict:
    """The study's sweep record: the one the storage holds, else ``record`` with a new parent run
    (created in ``record['experiment']``, tagged ``tags``) once this worker won the claim."""
    held = recorded(study)
    if held is not None:
        return held
    experiment_id = experiment(client, record["experiment"])
    candidate = client.create_run(experiment_id, run_name=study.study_name, tags=dict(tags)).info.run_id
    mine = {**record, "parent_run_id": candidate}
    backend = _backend(study)
    if isinstance(backend, optuna.storages.RDBStorage):
        _insert_once(backend, study._study_id, mine)
    elif recorded(study) is None:
        backend.set_study_system_attr(study._study_id, SWEEP_ATTR, mine)
    held = recorded(study)
    assert held is not None, "the claim was written, or another worker's was"
    if held["parent_run_id"] != candidate:
        client.delete_run(candidate)  # another worker's claim came first
    return held


def _insert_once(backend: optuna.storages.RDBStorage, study_id: int, value: Mapping[str, Any]) -> None:
    """Insert the attribute row; a row there already (another worker's claim) makes the insert fail
    and leaves that row as it is."""
    from optuna.storages._rdb import models
    from sqlalchemy.exc import IntegrityError

    session = backend.scoped_session()
    try:
        session.add(models.StudySystemAttributeModel(study_id=study_id, key=SWEEP_ATTR, value_json=json.dumps(value)))
        session.commit()
    except IntegrityError:
        session.rollback()
    finally:
        session.close()


def _backend(study: optuna.Study) -> Any:
    return getattr(study._storage, "_backend", study._storage)  # behind Optuna's cache: the database


def experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created when missing (another worker may create it meanwhile)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        created = client.get_experiment_by_name(name)  # by the worker that won the race
        if created is None:
            raise
        return created.experiment_id


def study_tags(study: optuna.Study, metric: str, declared: search_space.Space) -> dict[str, str]:
    """The parent run's description of the study: name, direction, monitored metric, sampler,
    pruner and the search space as declared."""
    return redacted(
        {
            STUDY_TAG: study.study_name,
            STUDY_DIRECTION_TAG: study.direction.name.lower(),
            STUDY_METRIC_TAG: metric,
            STUDY_SAMPLER_TAG: _described(study.sampler),
            STUDY_PRUNER_TAG: _described(study.pruner),
            STUDY_SPACE_TAG: search_space.to_json(declared),
        }
    )


def _described(part: Any) -> str:
    settings = {k.lstrip("_"): v for k, v in vars(part).items() if isinstance(v, (int, float, str, bool, type(None)))}
    return f"{type(part).__name__}({', '.join(f'{k}={v!r}' for k, v in sorted(settings.items()))})"


def best_trial(study: optuna.Study, trials: list[FrozenTrial]) -> FrozenTrial | None:
    """The best COMPLETE trial (the first of equal values, as Optuna's ``best_trial``), or None."""
    complete = [(t.value, t) for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        return None
    sign = 1 if study.direction == optuna.study.StudyDirection.MINIMIZE else -1
    return min(complete, key=lambda pair: (sign * pair[0], pair[1].number))[1]


def write_best(client: MlflowClient, parent_run_id: str, study: optuna.Study, declared: search_space.Space) -> None:
    """Write the study's best trial (as the storage holds it now) and the search space seen so far onto
    the parent run, unless the parent already shows a view of more finished trials."""
    trials = study.get_trials(deepcopy=False)
    finished = sum(t.state.is_finished() for t in trials)
    seen = {name: d for t in trials for name, d in t.distributions.items()}
    with bounded(), quiet():
        shown = client.get_run(parent_run_id).data.tags.get(STUDY_FINISHED_TRIALS_TAG)
        if shown is not None and shown.isdigit() and int(shown) > finished:
            return  # another worker wrote a newer view
        tags = {STUDY_FINISHED_TRIALS_TAG: str(finished), STUDY_SPACE_TAG: search_space.to_json({**seen, **declared})}
        metrics = []
        best = best_trial(study, trials)
        if best is not None:
            tags.update(
                {
                    BEST_TRIAL_TAG: str(best.number),
                    BEST_VALUE_TAG: repr(best.value),
                    BEST_PARAMS_TAG: json.dumps(best.params, sort_keys=True, default=str),
                    BEST_RUN_TAG: str(best.user_attrs.get(RUN_ID_ATTR, "")),
                    **{best_param_tag(name): str(value) for name, value in best.params.items()},
                }
            )
            metrics.append(Metric(BEST_VALUE, float(best.values[0]), int(time.time() * 1000), finished))
        client.log_batch(
            parent_run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in redacted(tags).items()], synchronous=True
        )


def end_if_done(client: MlflowClient, parent_run_id: str, study: optuna.Study) -> bool:
    """End the parent run FINISHED once no trial of the study runs or waits (the last worker to stop
    ends it); True when it did."""
    if study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        return False
    with bounded(), quiet():
        client.set_terminated(parent_run_id, "FINISHED")
    return True


def register_best_trial(
    study: optuna.Study, name: str, alias: str | None = "champion", tracking_uri: str | None = None, force: bool = False
) -> tuple[str, str | None]:
    """Register the best checkpoint (by the sweep's metric) of ``study``'s best trial as a new version of
    ``name``, moving ``alias`` by the registry's alias rule. Returns the version and, when the alias
    stayed, why."""
    from ..tracking.registry import register_best

    held = recorded(study)
    if held is None:
        raise NotFoundError(f"study {study.study_name!r} was not run as a sweep: its storage names no MLflow run")
    best = best_trial(study, study.get_trials(deepcopy=False))
    if best is None:
        raise NotFoundError(f"study {study.study_name!r} has no COMPLETE trial yet: nothing to register")
    run_id = best.user_attrs.get(RUN_ID_ATTR)
    if not run_id:
        raise NotFoundError(f"trial {best.number} of study {study.study_name!r} records no MLflow run")
    mode = "min" if study.direction == optuna.study.StudyDirection.MINIMIZE else "max"
    return register_best(run_id, name, held["metric"], mode, alias, tracking_uri or held["tracking_uri"], force=force)
