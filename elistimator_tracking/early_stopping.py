"""Early stopping, a listener: training stops when a validation metric stops improving.

Keras' ``EarlyStopping`` and tf.estimator's ``stop_if_no_decrease_hook`` are the references:
after each ``validate()`` the monitored metric either improves on the best so far (by more than
``min_delta``, in ``mode``: the ``Criterion`` every selection uses) or counts one validation
without improvement; once ``patience`` of them have passed (Keras' count: ``patience=0`` and ``1``
both stop at the first), the listener raises ``TrainingStopped``. The validation is committed
and its checkpoint can still be saved; the next ``train()`` raises the stop to your loop::

    est = Elistimator(model_fn, "runs/m", listeners=[EarlyStopping("loss", patience=3)])
    est.setup(train_input_fn, validation_input_fn)
    try:
        for epoch in range(100):
            est.train()
            est.validate()
            est.save_ckpt()
    except TrainingStopped as stop:
        print(stop)                    # why, at which step, the best value
    est.restore_best_ckpt("loss")

(or check ``est.stopped`` in the loop's condition). A model directory that resumes carries its
validations: the best so far and the validations since count from there. The MLflow run records
the stop as tags (step, reason, best).
"""

from __future__ import annotations

from collections.abc import Mapping

from .criterion import Criterion
from .errors import InvalidValueError, TrainingStopped
from .listeners import Listener, RunContext, SavedCheckpoint


class EarlyStopping(Listener):
    """Stop training once validation ``monitor`` has not improved for ``patience`` validations.

    Args:
        monitor: a metric ``validate()`` returns.
        mode: ``'min'``, ``'max'`` or ``'auto'`` (highest for accuracy-like names, lowest otherwise).
        patience: validations without improvement before the stop (0 and 1 both stop at the first).
        min_delta: an improvement must beat the best by more than this.

    Raises:
        InvalidValueError: ``patience`` below 0, an unknown ``mode``, a negative ``min_delta``; at
            ``setup()``, a ``monitor`` that ``validate()`` does not return.
        TrainingStopped: (from the next ``train()``) patience ran out: why, at which step, the best.
    """

    name = "EarlyStopping"

    def __init__(self, monitor: str = "loss", mode: str = "auto", patience: int = 0, min_delta: float = 0.0):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise InvalidValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        self.criterion = Criterion(monitor, mode, min_delta)
        self.patience = patience
        self.best: float | None = None
        self.best_step: int | None = None
        self.wait = 0
        self._set_up = False

    @property
    def monitor(self) -> str:
        return self.criterion.metric

    def on_setup(self, context: RunContext) -> None:
        if context.validation_metrics and self.monitor not in context.validation_metrics:
            raise InvalidValueError(
                f"EarlyStopping monitors {self.monitor!r}, which validate() does not return; it "
                f"returns {sorted(context.validation_metrics)}"
            )
        if self._set_up:
            return  # every setup() after the first swaps data only
        self._set_up = True
        for step, metrics in sorted(context.index.validations.items()):  # a resumed directory's history
            if metrics.get(self.monitor) is not None:
                self._observe(step, metrics[self.monitor])

    def on_validation(self, step: int, metrics: Mapping[str, float], checkpoint: SavedCheckpoint | None) -> None:
        if self.monitor not in metrics:
            raise InvalidValueError(
                f"EarlyStopping monitors {self.monitor!r}, which this validation does not have; "
                f"it has {sorted(metrics)}"
            )
        self._observe(step, metrics[self.monitor])
        if self.wait >= max(self.patience, 1):
            best = f"{self.best:.6g} at step {self.best_step}" if self.best is not None else None
            raise TrainingStopped(
                f"early stopping: validation {self.criterion.describe()} did not improve for {self.wait} "
                f"validation(s) (patience {self.patience}); the best is {best or 'none'}",
                step=step,
                best=best,
            )

    def _observe(self, step: int, value: float | None) -> None:
        if self.criterion.improves(value, self.best):
            self.best, self.best_step, self.wait = value, step, 0
        else:
            self.wait += 1
