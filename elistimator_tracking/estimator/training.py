"""``TrainSpec``, ``EvalSpec``, exporters and ``train_and_evaluate`` (the local, non-distributed case).

As tf.estimator 1.15's local run: train to ``TrainSpec.max_steps``; after a checkpoint is
saved, evaluate on the ``EvalSpec`` when ``throttle_secs`` have passed since the last
evaluation, and once more at the end; after each evaluation the exporters run. The eval
spec's metrics are the checkpoints' validation metrics (MLflow ``validation/<metric>``),
so ``register_best`` and ``restore_best_ckpt`` select by them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from .._tf import tf
from ..errors import InvalidTypeError, InvalidValueError
from .exporters import Exporter
from .hooks import checked_hooks


class TrainSpec:
    """The training ``input_fn``, the global step to stop at, hooks and saving listeners."""

    def __init__(
        self,
        input_fn: Callable,
        max_steps: int | None = None,
        hooks: Sequence | None = None,
        saving_listeners: Sequence | None = None,
    ):
        if not callable(input_fn):
            raise InvalidTypeError(f"TrainSpec: input_fn must be callable, got {type(input_fn).__name__}")
        if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
            raise InvalidValueError(f"TrainSpec: max_steps must be a positive int or None, got {max_steps!r}")
        self.input_fn, self.max_steps = input_fn, max_steps
        self.hooks = checked_hooks(hooks, "TrainSpec.hooks")
        self.saving_listeners = tuple(saving_listeners or ())


class EvalSpec:
    """The evaluation ``input_fn``, batches per evaluation (``steps``; None: all), its ``name``, hooks,
    exporters, and the least time between evaluations (``throttle_secs``)."""

    def __init__(
        self,
        input_fn: Callable,
        steps: int | None = 100,
        name: str | None = None,
        hooks: Sequence | None = None,
        exporters: Any = None,
        start_delay_secs: int = 120,
        throttle_secs: int = 600,
    ):
        if not callable(input_fn):
            raise InvalidTypeError(f"EvalSpec: input_fn must be callable, got {type(input_fn).__name__}")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            raise InvalidValueError(f"EvalSpec: steps must be a positive int or None, got {steps!r}")
        if not isinstance(throttle_secs, (int, float)) or throttle_secs < 0:
            raise InvalidValueError(f"EvalSpec: throttle_secs must be a number >= 0, got {throttle_secs!r}")
        exporters = (
            [] if exporters is None else list(exporters) if isinstance(exporters, (list, tuple)) else [exporters]
        )
        for exporter in exporters:
            if not isinstance(exporter, Exporter):
                raise InvalidTypeError(f"EvalSpec: exporters must be Exporter objects, got {type(exporter).__name__}")
        names = [e.name for e in exporters]
        if len(set(names)) != len(names):
            raise InvalidValueError(f"EvalSpec: exporter names must be unique, got {names}")
        self.input_fn, self.steps, self.name = input_fn, steps, name
        self.hooks = checked_hooks(hooks, "EvalSpec.hooks")
        self.exporters, self.start_delay_secs, self.throttle_secs = tuple(exporters), start_delay_secs, throttle_secs


class _EvaluateAfterSave(tf.train.CheckpointSaverListener):
    """Evaluates (then exports) after a checkpoint save when ``throttle_secs`` have passed, and at the end
    unless the last step was evaluated; the save when training starts is skipped (the model is not
    trained yet), as tf.estimator skipped it. The export at or beyond ``max_steps`` is the final one."""

    def __init__(self, estimator: Any, eval_spec: EvalSpec, max_steps: int | None):
        self._estimator, self._spec, self._max_steps = estimator, eval_spec, max_steps
        self._last_time: float | None = None
        self._first = True
        self.result: dict[str, Any] | None = None
        self.exports: list[Any] = []  # the last evaluation's export results

    def after_save(self, session: tf.Session, global_step_value: int) -> None:
        if self._first:
            self._first = False
            return
        if self._last_time is None or time.monotonic() - self._last_time >= self._spec.throttle_secs:
            self._evaluate(final=self._max_steps is not None and global_step_value >= self._max_steps)

    def end(self, session: tf.Session | None, global_step_value: int | None) -> None:
        if self.result is None or self.result["global_step"] != global_step_value:
            self._evaluate(final=True)

    def _evaluate(self, final: bool) -> None:
        self._last_time = time.monotonic()
        spec, estimator = self._spec, self._estimator
        self.result = estimator._evaluate(spec.input_fn, spec.steps, spec.hooks, None, spec.name, validation=True)
        self.exports = [
            exporter.export(
                estimator,
                os.path.join(estimator.model_dir, "export", exporter.name),
                estimator.latest_checkpoint(),
                self.result,
                final,
            )
            for exporter in spec.exporters
        ]


def train_and_evaluate(
    estimator: Any, train_spec: TrainSpec, eval_spec: EvalSpec
) -> tuple[dict[str, Any] | None, list[Any]]:
    """Train and evaluate locally as tf.estimator did; return the last evaluation's metrics and what its
    exporters exported."""
    from .estimator import Estimator

    if not isinstance(estimator, Estimator):
        raise InvalidTypeError(f"estimator must be an estimator.Estimator, got {type(estimator).__name__}")
    if not isinstance(train_spec, TrainSpec) or not isinstance(eval_spec, EvalSpec):
        raise InvalidTypeError(
            f"train_and_evaluate takes (estimator, TrainSpec, EvalSpec), got "
            f"({type(train_spec).__name__}, {type(eval_spec).__name__})"
        )
    evaluation = _EvaluateAfterSave(estimator, eval_spec, train_spec.max_steps)
    estimator.train(
        train_spec.input_fn,
        hooks=list(train_spec.hooks),
        max_steps=train_spec.max_steps,
        saving_listeners=list(train_spec.saving_listeners) + [evaluation],
    )
    if evaluation.result is None and estimator.latest_checkpoint() is not None:  # max_steps was reached before
        evaluation.end(None, None)
    return evaluation.result, list(evaluation.exports)
