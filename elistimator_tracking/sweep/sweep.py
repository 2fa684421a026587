"""``Sweep``: an Optuna study whose trials are tracked Elistimator trainings, each a child of the
study's parent run, pruned from ``validate()``, and continued in their own model directory and run
when Optuna retries a trial whose process was killed.

The study stays Optuna's: you create it (``optuna.create_study``, any sampler and pruner, any
storage), write the objective with ``trial.suggest_*`` or the sweep's declared ``space``, and run
``study.optimize(objective, callbacks=[sweep])`` (or ``sweep.optimize``). The sweep adds the MLflow
side (``study_run.py``) and ``sweep.trial(...)``, which gives the objective a set-up Elistimator.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..criterion import Criterion
from ..errors import InvalidTypeError, InvalidValueError, NotSupportedError, TrackingWarning
from ..settings import PathLike
from ..tracking.http_limits import bounded, quiet
from ..tracking.names import PARENT_RUN_TAG, TRIAL_NUMBER_TAG, TRIAL_RETRIED_TAG, TRIAL_STATE_TAG
from . import space as search_space
from . import study_run
from .pruning import PruningListener, TrialPruned
from .retries import first_attempt, retry_history

#: options of ``Elistimator(...)`` the sweep sets itself for every trial
SWEEP_OPTIONS = ("tracking", "experiment", "run_name")


class Sweep:
    """The MLflow side of ``study`` and the trials' model directories under ``root``.

    Args:
        study: an ``optuna.Study`` with one objective (its direction decides which value is better).
        root: where each trial's model directory goes (``trial-<number>``); for retries to continue a
            trial on another machine, a folder every worker sees.
        metric: the validation metric the pruner watches and the objective returns (a name
            ``validate()`` returns: ``loss``, ``accuracy``, ...).
        space: optional ``{param: optuna distribution}``, checked now; ``sweep.params(trial)``
            suggests it. The objective may suggest more with ``trial.suggest_*``.
        experiment: the MLflow experiment of the parent and the trials (default: the study's name).
        tracking_uri: the MLflow store (default: ``MLFLOW_TRACKING_URI``, else MLflow's default).

    Every worker of a study makes its own ``Sweep`` with the same arguments: the first one creates the
    parent run, the others find it through the study's storage.
    """

    def __init__(
        self,
        study: optuna.Study,
        root: PathLike,
        metric: str = "loss",
        *,
        space: Mapping[str, Any] | None = None,
        experiment: str | None = None,
        tracking_uri: str | None = None,
    ):
        if not isinstance(study, optuna.Study):
            raise InvalidTypeError(f"study must be an optuna.Study, got {type(study).__name__}")
        if len(study.directions) != 1:
            raise NotSupportedError("a sweep optimizes one objective; this study has several directions")
        if not isinstance(root, (str, os.PathLike)):
            raise InvalidTypeError(f"root must be a str or pathlib.Path, got {type(root).__name__}")
        self.study, self.root = study, Path(root).expanduser().absolute()
        mode = "min" if study.direction == optuna.study.StudyDirection.MINIMIZE else "max"
        self.criterion = Criterion(metric, mode)
        self.space = search_space.checked_space(space)
        import mlflow
        from mlflow.tracking import MlflowClient

        from ..tracking.store_uri import StoreUri

        self._store = StoreUri.given(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or mlflow.get_tracking_uri())
        self._client = MlflowClient(self._store.client_uri)
        held = study_run.recorded(study)
        wanted = {
            "experiment": experiment or (held or {}).get("experiment") or study.study_name,
            "tracking_uri": self._store.public,
            "metric": metric,
            "space": search_space.to_json(self.space),
        }
        if held is not None:
            self._agrees(held, wanted)
        tags = study_run.study_tags(study, metric, self.space)
        with bounded(), quiet():  # a store that does not answer is an error within seconds
            self.record = study_run.claim(study, self._client, wanted, tags)
            self._agrees(self.record, wanted)
            self.experiment: str = self.record["experiment"]
            self.parent_run_id: str = self.record["parent_run_id"]
            self._client.update_run(self.parent_run_id, status="RUNNING")  # a study that goes on runs again

    @property
    def metric(self) -> str:
        return self.criterion.metric

    @property
    def tracking_uri(self) -> str:
        """Where the study is tracked (without credentials)."""
        return self._store.public

    def _agrees(self, held: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
        """Refuse a sweep whose metric, store, experiment or space differ from what the study records."""
        study = self.study.study_name
        search_space.consistent(self.space, search_space.from_json(held.get("space")), study)
        for key in ("metric", "tracking_uri", "experiment"):
            if held.get(key) != wanted[key]:
                raise InvalidValueError(
                    f"study {study!r} is swept with {key} {held.get(key)!r} (its storage says so); this Sweep "
                    f"was given {wanted[key]!r}: give the same one in every worker, or use another study name"
                )

    # -- a trial -----------------------------------------------------------------------------

    def params(self, trial: optuna.trial.Trial) -> dict[str, Any]:
        """The trial's values of the declared ``space`` (a retried trial gets the killed attempt's)."""
        return search_space.suggest(trial, self.space)

    def model_dir(self, trial: optuna.trial.Trial) -> Path:
        """The trial's model directory: the one its killed attempt used, else ``root/trial-<number>``."""
        kept = trial.user_attrs.get(study_run.MODEL_DIR_ATTR)
        return Path(kept) if kept else self.root / f"trial-{first_attempt(trial)}"

    @contextlib.contextmanager
    def trial(
        self,
        trial: optuna.trial.Trial,
        model_fn: Callable,
        train_input_fn: Callable,
        validation_input_fn: Callable,
        params: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Iterator[Any]:
        """A set-up ``Elistimator`` for ``trial``, tracked as a child of the study's parent run, pruned
        from ``validate()``; a retried trial's continues the killed attempt's model directory and run
        from its latest checkpoint (``global_step`` says where). ``params`` (the trial's params are
        added) go to ``model_fn``; ``options`` are ``Elistimator``'s (``listeners`` are added to the
        pruner). Leaving the block ends the run: FINISHED, KILLED with ``optuna.trial.state`` PRUNED
        when the pruner stopped it (``TrialPruned`` is raised to Optuna then, even after the last
        ``validate()``), FAILED on an error."""
        model_dir = self.model_dir(trial)
        new = not model_dir.exists()
        estimator = self._estimator(trial, model_dir, model_fn, {**dict(params or {}), **trial.params}, options)
        try:
            estimator.setup(train_input_fn, validation_input_fn)
        except BaseException as error:  # refused before any training (a metric validate() lacks, bad data)
            estimator.__exit__(type(error), error, error.__traceback__)
            if new and not estimator.run_id:
                shutil.rmtree(model_dir, ignore_errors=True)  # nothing of a trial that never started stays
            raise
        try:
            if estimator.checkpoints:
                estimator.restore_latest_ckpt()  # a retry: on from where the killed attempt left off
            self._note_run(trial, estimator)
            yield estimator
        except BaseException as error:
            self._end(trial, estimator, TrialState.PRUNED if isinstance(error, optuna.TrialPruned) else TrialState.FAIL)
            estimator.__exit__(type(error), error, error.__traceback__)
            self._note_run(trial, estimator)
            raise
        stop = estimator.stopped
        pruned = isinstance(stop, TrialPruned)
        self._end(trial, estimator, TrialState.PRUNED if pruned else TrialState.COMPLETE)
        estimator.__exit__(*((type(stop), stop, None) if pruned else (None, None, None)))
        self._note_run(trial, estimator)
        if pruned:
            raise stop  # the pruner spoke at the last validation: Optuna must hear it

    @staticmethod
    def _end(trial: optuna.trial.Trial, estimator: Any, state: TrialState) -> None:
        """The run's trial state, journaled before its end (the callback corrects it if Optuna decides
        otherwise, e.g. for an objective that returned NaN)."""
        if estimator.tracker.record is not None:
            estimator.tracker.set_tags({TRIAL_STATE_TAG: state.name})

    def _estimator(
        self, trial: optuna.trial.Trial, model_dir: Path, model_fn: Callable, params: dict, options: dict
    ) -> Any:
        from ..elistimator import Elistimator
        from ..loading import continued_model
        from ..settings import Settings

        taken = sorted(set(options) & set(SWEEP_OPTIONS))
        if taken:
            raise InvalidValueError(f"the sweep sets {taken} for every trial; do not pass them to sweep.trial")
        trial.set_user_attr(study_run.MODEL_DIR_ATTR, str(model_dir))
        history = retry_history(trial)
        tags = {
            **dict(options.pop("tags", None) or {}),
            PARENT_RUN_TAG: self.parent_run_id,
            TRIAL_NUMBER_TAG: str(trial.number),
            TRIAL_STATE_TAG: TrialState.RUNNING.name,
            **({TRIAL_RETRIED_TAG: ",".join(map(str, history))} if history else {}),
        }
        listeners = [PruningListener(trial, self.metric), *(options.pop("listeners", None) or ())]
        settings = Settings.checked(
            **options,
            tracking=self._store.client_uri,
            experiment=self.experiment,
            run_name=model_dir.name,
            tags=tags,
            listeners=listeners,
        )
        return Elistimator._from_origin(continued_model(model_fn, model_dir, params, settings))

    def _note_run(self, trial: optuna.trial.Trial, estimator: Any) -> None:
        """Keep the trial's run id in its user attributes (a retry inherits them; registration reads them)."""
        run_id = estimator.run_id
        if run_id and trial.user_attrs.get(study_run.RUN_ID_ATTR) != run_id:
            trial.set_user_attr(study_run.RUN_ID_ATTR, run_id)

    def best_value(self, estimator: Any) -> float:
        """The best validation ``metric`` among the trial's checkpoints (what the objective returns: the
        checkpoint ``register_best`` would register)."""
        values = {step: c["metrics"].get(self.metric) for step, c in estimator.checkpoints.items()}
        best = self.criterion.best(values)
        if best is None:
            raise InvalidValueError(
                f"no checkpoint of this trial has a validation {self.metric!r}: validate() before save_ckpt()"
            )
        return float(values[best])

    # -- the study ---------------------------------------------------------------------------

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Optuna's callback after each finished trial: its run's state tag as Optuna decided it, and the
        study's best onto the parent run. A store that fails here costs a warning, not the study."""
        try:
            run_id = trial.user_attrs.get(study_run.RUN_ID_ATTR)
            if run_id:
                with bounded(), quiet():
                    self._client.set_tag(run_id, TRIAL_STATE_TAG, trial.state.name)
            study_run.write_best(self._client, self.parent_run_id, study, self.space)
        except Exception as error:  # noqa: BLE001 -- tracking never breaks the study
            warnings.warn(
                f"the parent run {self.parent_run_id} of study {study.study_name!r} was not updated after trial "
                f"{trial.number}: {type(error).__name__}: {error}; the next finished trial tries again",
                TrackingWarning,
                stacklevel=2,
            )

    def finish(self) -> bool:
        """The study's end in this worker: the best onto the parent run, which ends FINISHED when no trial
        runs or waits any more (the last worker to stop ends it). True when it ended."""
        study_run.write_best(self._client, self.parent_run_id, self.study, self.space)
        return study_run.end_if_done(self._client, self.parent_run_id, self.study)

    def optimize(
        self, objective: Callable, n_trials: int | None = None, *, callbacks: Sequence[Callable] = (), **kwargs: Any
    ) -> None:
        """``study.optimize`` with this sweep among the callbacks, then ``finish()``."""
        try:
            self.study.optimize(objective, n_trials=n_trials, callbacks=[self, *callbacks], **kwargs)
        finally:
            self.finish()

    def register_best(self, name: str, alias: str | None = "champion", force: bool = False) -> tuple[str, str | None]:
        """Register the best checkpoint of the study's best trial (see ``register_best_trial``)."""
        return study_run.register_best_trial(self.study, name, alias, force=force)
