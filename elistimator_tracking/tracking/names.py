"""Every name this package gives things in MLflow: tag keys, metric prefixes, artifact paths,
logged-model names, and the model sources it reads (``runs:/``, ``models:/``).

The one module that spells them (``tests/test_names.py`` refuses a spelling anywhere else), so a
reader, a migration or a query of the store finds them in one place. A leaf: no MLflow import.
"""

from __future__ import annotations

import os
import re

from ..errors import InvalidValueError

# -- experiments ---------------------------------------------------------------------------------
#: MLflow's own default experiment (id 0 in every store), and the variable its fluent API reads
DEFAULT_EXPERIMENT = "Default"
EXPERIMENT_NAME_VARIABLE = "MLFLOW_EXPERIMENT_NAME"


def default_experiment() -> str:
    """The experiment of a run whose Elistimator names none: ``$MLFLOW_EXPERIMENT_NAME``, else MLflow's
    ``Default``, where ``mlflow.start_run()`` puts a run (not the model function's name: every
    ``model_fn`` would get an experiment of its own)."""
    return os.environ.get(EXPERIMENT_NAME_VARIABLE, "").strip() or DEFAULT_EXPERIMENT


# -- tags of a run --------------------------------------------------------------------------------
#: names a run for good, whatever its MLflow run id: a replay finds the run again by it
RUN_KEY_TAG = "elistimator.run_key"
#: why a FAILED or KILLED run ended (its error text, secrets redacted)
ERROR_TAG = "elistimator.error"
#: the greatest checkpointed step, and the best one by validation loss (updated at each checkpoint)
LATEST_STEP_TAG = "elistimator.latest_step"
BEST_STEP_TAG = "elistimator.best_step"
BEST_METRIC_TAG = "elistimator.best_metric"
#: provenance: package versions, the model function and the artifact holding its file
VERSION_TAG = "elistimator.version"
TENSORFLOW_VERSION_TAG = "tensorflow.version"
MLFLOW_VERSION_TAG = "mlflow.version"
PYTHON_VERSION_TAG = "python.version"
MODEL_FN_TAG = "elistimator.model_fn"
MODEL_FN_SOURCE_TAG = "elistimator.model_fn.source"
GIT_COMMIT_TAG = "mlflow.source.git.commit"  # MLflow's own: the UI links it
GIT_DIRTY_TAG = "git.dirty"
#: MLflow's parent-run relation: the UI groups a study's trials under it
PARENT_RUN_TAG = "mlflow.parentRunId"
#: a sweep's trial run (``sweep/``): the Optuna trial whose result it holds, that trial's state
#: (Optuna's TrialState names: RUNNING, COMPLETE, PRUNED, FAIL, as optuna-integration's MLflowCallback
#: tags them), the study, and the trial numbers of killed attempts this run continues
TRIAL_NUMBER_TAG = "optuna.trial.number"
TRIAL_STATE_TAG = "optuna.trial.state"
TRIAL_RETRIED_TAG = "optuna.trial.retry_of"
STUDY_TAG = "optuna.study"
#: a study's parent run: how the study searches, the search space (JSON, Optuna's distributions),
#: and the best trial so far (its value is also the metric BEST_VALUE, stepped by finished trials)
STUDY_DIRECTION_TAG = "optuna.study.direction"
STUDY_METRIC_TAG = "optuna.study.metric"
STUDY_SAMPLER_TAG = "optuna.study.sampler"
STUDY_PRUNER_TAG = "optuna.study.pruner"
STUDY_SPACE_TAG = "optuna.study.search_space"
STUDY_FINISHED_TRIALS_TAG = "optuna.study.finished_trials"
BEST_TRIAL_TAG = "optuna.best.trial"
BEST_VALUE_TAG = "optuna.best.value"
BEST_RUN_TAG = "optuna.best.run_id"
BEST_PARAMS_TAG = "optuna.best.params"
BEST_PARAM_PREFIX = "optuna.best.param."
BEST_VALUE = "best_value"
#: why training stopped early (a listener's request: early stopping, a pruner), at which step
STOP_REASON_TAG = "elistimator.stop.reason"
STOP_STEP_TAG = "elistimator.stop.step"
STOP_BEST_TAG = "elistimator.stop.best"

# -- tags of a checkpoint's logged model, and of a registered version ------------------------------
#: names one checkpoint of one run for good (``checkpoint_key``): a replay finds the model again
CHECKPOINT_KEY_TAG = "elistimator.checkpoint_key"
#: the checkpoint's global step (a logged model's and a registered version's)
STEP_TAG = "elistimator.step"
#: the sha256 of each file of the checkpoint, as the training machine saved it: a remote restore
#: checks the files it downloads against the store's database, not only against the checksums
#: that travel beside them
CHECKSUMS_TAG = "elistimator.checksums"
#: a registered version's logged model (a SQL registry does not keep the version's model_id)
MODEL_ID_TAG = "elistimator.model_id"
#: how a registered version was chosen: ``validation/<metric> (<mode>)``
SELECTED_BY_TAG = "elistimator.selected_by"
LOGGED_MODEL_TYPE = "elistimator-checkpoint"

# -- metric prefixes ----------------------------------------------------------------------------------
TRAIN = "train"  # train/loss, every summary_every_n_steps
VALIDATION = "validation"  # validate() results; also the tags of a registered version's metrics
EVALUATION = "evaluation"  # evaluate(input_fn), evaluation/<name>/<metric> with a name
SYSTEM = "system"  # system_metrics=True: MLflow's monitors
PREFIXES = (TRAIN, VALIDATION, EVALUATION, SYSTEM)

# -- artifact paths --------------------------------------------------------------------------------
SOURCE_ARTIFACTS = "source"  # the model function's file, redacted
TENSORBOARD_ARTIFACTS = "tensorboard"  # the train/ and validation/ event folders, at close()
SAVED_MODEL_ARTIFACTS = "saved_models"  # SavedModels the estimator front end exported
#: runs of release 0.1 hold each checkpoint also as ``checkpoints/step-<N>/`` (still restored)
LEGACY_CHECKPOINT_ARTIFACTS = "checkpoints"
LEGACY_STEP_DIR = re.compile(r"step-(\d+)")
#: the pyfunc artifact of a checkpoint's logged model: the one-checkpoint model directory
MODEL_DIR_ARTIFACT = "model_dir"

#: ``runs:/<id>``, ``models:/m-<logged model id>``, ``models:/<name>/<version>``, ``models:/<name>@<alias>``
SOURCE = re.compile(
    r"^(?:runs:/(?P<run>[0-9a-zA-Z_-]+)/?"
    r"|models:/(?P<model_id>m-[0-9a-f]+)/?"
    r"|models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))/?)$"
)


def metric(prefix: str, name: object) -> str:
    """``<prefix>/<name>``: the run's name for a metric (``validation/accuracy``)."""
    return f"{prefix}/{name}"


def split_metric(name: str) -> tuple[str | None, str]:
    """``'validation/accuracy'`` -> ``('validation', 'accuracy')``; a name without one of
    ``PREFIXES`` -> ``(None, name)``."""
    prefix, slash, rest = name.partition("/")
    return (prefix, rest) if slash and prefix in PREFIXES else (None, name)


def validation_metrics(names: object) -> dict[str, str]:
    """``{metric: run metric name}`` for the validation metrics among a run's metric ``names``."""
    found = {}
    for name in names:  # type: ignore[attr-defined]
        prefix, short = split_metric(str(name))
        if prefix == VALIDATION:
            found[short] = str(name)
    return found


def selected_by(metric_name: str, mode: str) -> str:
    """How a checkpoint was chosen: ``validation/loss (min)``."""
    return f"{metric(VALIDATION, metric_name)} ({mode})"


def stop_tags(step: int, reason: str, best: str | None) -> dict[str, str]:
    """The tags that record why and where training stopped early."""
    return {STOP_STEP_TAG: str(step), STOP_REASON_TAG: reason, **({STOP_BEST_TAG: best} if best else {})}


def best_param_tag(name: str) -> str:
    """The parent run's tag holding the best trial's value of param ``name``."""
    return f"{BEST_PARAM_PREFIX}{name}"


def logged_model_name(step: int) -> str:
    """A checkpoint's logged model name (what the run's "Logged models" tab lists)."""
    return f"step-{step}"


def legacy_checkpoint_path(step: int) -> str:
    """``checkpoints/step-<N>``: a checkpoint as runs of release 0.1 logged it (a model directory)."""
    return f"{LEGACY_CHECKPOINT_ARTIFACTS}/step-{step}"


def is_remote_source(source: object) -> bool:
    """``runs:/...`` or ``models:/...`` rather than a local model directory."""
    return isinstance(source, str) and source.startswith(("runs:/", "models:/"))


def parse_source(source: str) -> dict[str, str | None]:
    """``{'run', 'model_id', 'name', 'version', 'alias'}`` of a ``runs:/`` or ``models:/`` source."""
    match = SOURCE.match(source)
    if not match:
        raise InvalidValueError(
            f"{source!r} is not a model source: expected a model directory, runs:/<run_id>, "
            "models:/<name>/<version>, models:/<name>@<alias> or models:/m-<logged model id>"
        )
    return match.groupdict()
