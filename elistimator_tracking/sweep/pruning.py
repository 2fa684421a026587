"""Pruning from ``validate()``, a listener: each validation reports the monitored metric to the Optuna
trial at the global step, and when the study's pruner says so training stops at a clean point.

In the spirit of Optuna's ``TensorFlowPruningHook`` for tf.estimator, without re-reading summary
files: the value comes straight from ``validate()``. The stop is a ``TrialPruned``, both a
``TrainingStopped`` (the validation, and a checkpoint saved at its step, are committed; the next
``train()`` raises it) and an ``optuna.TrialPruned`` (Optuna records the trial as PRUNED). A run that
ends with it ends KILLED, with ``optuna.trial.state`` PRUNED (``docs/sweeps.md`` says why).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import optuna

from ..errors import InvalidValueError, TrainingStopped
from ..listeners import Listener, RunContext, SavedCheckpoint


class TrialPruned(TrainingStopped, optuna.TrialPruned):
    """The study's pruner stopped this trial: training ends after the step in progress, Optuna records
    the trial as PRUNED, and the MLflow run ends KILLED (a stop asked for, not a failure, not a finish)."""

    run_status = "KILLED"

    def __init__(self, reason: str, *, step: int | None = None, best: str | None = None):
        TrainingStopped.__init__(self, reason, step=step, best=best)


class PruningListener(Listener):
    """Report validation ``metric`` to ``trial`` after every ``validate()``; stop with ``TrialPruned``
    when ``trial.should_prune()``. A model directory that resumes (a retried trial) reports the
    validations it holds first, so the pruner judges the whole curve."""

    name = "PruningListener"

    def __init__(self, trial: optuna.trial.Trial, metric: str = "loss"):
        if not isinstance(metric, str) or not metric:
            raise InvalidValueError(f"PruningListener: metric must be a non-empty string, got {metric!r}")
        self.trial, self.metric = trial, metric
        self._set_up = False
        self._reported: set[int] = set()

    def on_setup(self, context: RunContext) -> None:
        if self.metric not in context.validation_metrics:
            returned = sorted(context.validation_metrics)
            raise InvalidValueError(
                f"the sweep monitors validation {self.metric!r}, which validate() does not return; it returns "
                f"{returned or 'nothing (the model has no EvaluationSpec)'}: pass metric= one of them, or add "
                f"{self.metric!r} to the EvaluationSpec's eval_metric_ops"
            )
        if self._set_up:
            return  # every setup() after the first swaps data only
        self._set_up = True
        for step, metrics in sorted(context.index.validations.items()):
            self._report(step, metrics.get(self.metric))

    def on_validation(self, step: int, metrics: Mapping[str, float], checkpoint: SavedCheckpoint | None) -> None:
        if self.metric not in metrics:
            raise InvalidValueError(
                f"the sweep monitors validation {self.metric!r}, which this validation does not have; it has "
                f"{sorted(metrics)}"
            )
        value = metrics[self.metric]
        self._report(step, value)
        if self.trial.should_prune():
            raise TrialPruned(
                f"pruned by {type(self.trial.study.pruner).__name__}: validation {self.metric} = {value:.6g} "
                f"at step {step} (trial {self.trial.number})",
                step=step,
            )

    def _report(self, step: int, value: float | None) -> None:
        if value is None or math.isnan(value) or step in self._reported:
            return  # a retracted point; or a step reported already (Optuna keeps the first)
        self._reported.add(step)
        self.trial.report(float(value), step)
