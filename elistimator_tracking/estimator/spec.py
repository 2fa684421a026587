"""``ModeKeys`` and ``EstimatorSpec``: what a tf.estimator ``model_fn`` returns, validated as tf.estimator 1.15 did.

Each check names the mode and the field, so a wrong ``model_fn`` fails when it is built,
not inside a session run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tensorflow.python.saved_model.model_utils import export_output as export_output_lib
from tensorflow.python.saved_model.model_utils import export_utils

from .._tf import tf, tf2
from ..errors import InvalidTypeError, InvalidValueError
from .hooks import checked_hooks


class ModeKeys:
    """The three modes a ``model_fn`` is called in (tf.estimator's string values)."""

    TRAIN = "train"
    EVAL = "eval"
    PREDICT = "infer"


MODES = (ModeKeys.TRAIN, ModeKeys.EVAL, ModeKeys.PREDICT)
MetricPair = tuple[tf.Tensor, tf.Tensor | tf.Operation]


def _fail(mode: str, message: str, error: type = InvalidValueError) -> None:
    raise error(f"EstimatorSpec(mode={mode!r}): {message}")


class EstimatorSpec:
    """What ``model_fn`` returns for one mode (tf.estimator 1.15's fields and checks).

    TRAIN needs ``loss`` and ``train_op``, EVAL needs ``loss``, PREDICT needs ``predictions``;
    ``loss`` is a scalar tensor; ``eval_metric_ops`` values are ``(value, update_op)`` pairs
    (what ``tf.metrics.*`` return) or ``tf.keras.metrics.Metric`` objects whose ``update_state``
    ran inside ``model_fn``. In PREDICT mode ``export_outputs`` defaults to one
    ``PredictOutput`` of the predictions (the serving signature).
    """

    def __init__(
        self,
        mode: str,
        predictions: Any = None,
        loss: Any = None,
        train_op: Any = None,
        eval_metric_ops: Mapping[str, Any] | None = None,
        export_outputs: Mapping | None = None,
        training_chief_hooks: Sequence | None = None,
        training_hooks: Sequence | None = None,
        scaffold: Any = None,
        evaluation_hooks: Sequence | None = None,
        prediction_hooks: Sequence | None = None,
    ):
        if mode not in MODES:
            raise InvalidValueError(
                f"EstimatorSpec: mode must be one of ModeKeys.TRAIN/EVAL/PREDICT {MODES}, got {mode!r}"
            )
        self.mode = mode
        self.loss = _checked_loss(mode, loss)
        self.train_op = _checked_train_op(mode, train_op)
        self.predictions = _checked_predictions(mode, predictions)
        self.eval_metric_ops = _checked_metrics(mode, eval_metric_ops)
        self.export_outputs = _checked_export_outputs(mode, export_outputs, self.predictions)
        where = f"EstimatorSpec(mode={mode!r})."
        self.training_chief_hooks = checked_hooks(training_chief_hooks, where + "training_chief_hooks")
        self.training_hooks = checked_hooks(training_hooks, where + "training_hooks")
        self.evaluation_hooks = checked_hooks(evaluation_hooks, where + "evaluation_hooks")
        self.prediction_hooks = checked_hooks(prediction_hooks, where + "prediction_hooks")
        if scaffold is not None and not isinstance(scaffold, tf.train.Scaffold):
            _fail(
                mode, f"scaffold must be a tf.compat.v1.train.Scaffold, got {type(scaffold).__name__}", InvalidTypeError
            )
        self.scaffold = scaffold or tf.train.Scaffold()

    def _replace(self, **changes: Any) -> EstimatorSpec:
        """A copy with ``changes`` (tf.estimator's spec was a namedtuple; programs use ``_replace``)."""
        fields = {
            name: getattr(self, name)
            for name in (
                "mode",
                "predictions",
                "loss",
                "train_op",
                "eval_metric_ops",
                "export_outputs",
                "training_chief_hooks",
                "training_hooks",
                "scaffold",
                "evaluation_hooks",
                "prediction_hooks",
            )
        }
        return EstimatorSpec(**{**fields, **changes})

    def metric_pairs(self) -> dict[str, MetricPair]:
        """``eval_metric_ops`` as ``(value, update_op)`` pairs (Keras metrics: ``result()`` and their updates;
        made once)."""
        if getattr(self, "_pairs", None) is None:
            self._pairs = {name: _metric_pair(self.mode, name, metric) for name, metric in self.eval_metric_ops.items()}
        return self._pairs


def _checked_loss(mode: str, loss: Any) -> tf.Tensor | None:
    if loss is None:
        if mode in (ModeKeys.TRAIN, ModeKeys.EVAL):
            _fail(mode, "loss is missing; TRAIN and EVAL need a scalar loss tensor")
        return None
    if isinstance(loss, tf2.Variable):
        loss = loss.value()
    if not isinstance(loss, tf.Tensor):
        _fail(mode, f"loss must be a tf.Tensor, got {type(loss).__name__}: {loss!r}", InvalidTypeError)
    if loss.shape.rank not in (None, 0) and loss.shape.num_elements() != 1:
        _fail(mode, f"loss must be a scalar tensor, got shape {loss.shape} (reduce it, e.g. tf.reduce_mean)")
    return tf.reshape(loss, []) if loss.shape.rank not in (None, 0) else loss


def _checked_train_op(mode: str, train_op: Any) -> tf.Operation | None:
    if train_op is None:
        if mode == ModeKeys.TRAIN:
            _fail(mode, "train_op is missing; TRAIN needs one (e.g. optimizer.minimize(loss, global_step=...))")
        return None
    if isinstance(train_op, (tf.Tensor, tf2.Variable)):  # e.g. tf.assign_add(global_step, 1): a variable
        return train_op.op
    if not isinstance(train_op, tf.Operation):
        _fail(mode, f"train_op must be a tf.Operation or tf.Tensor, got {type(train_op).__name__}", InvalidTypeError)
    return train_op


def _checked_predictions(mode: str, predictions: Any) -> Any:
    if predictions is None:
        if mode == ModeKeys.PREDICT:
            _fail(mode, "predictions is missing; PREDICT needs a tensor or a dict of tensors")
        return None
    if isinstance(predictions, Mapping):
        for key, value in predictions.items():
            if not isinstance(key, str) or not key:
                _fail(mode, f"predictions keys must be non-empty strings, got {key!r}", InvalidTypeError)
            if not isinstance(value, tf.Tensor):
                _fail(mode, f"predictions[{key!r}] must be a tf.Tensor, got {type(value).__name__}", InvalidTypeError)
        if not predictions:
            _fail(mode, "predictions is an empty dict")
        return dict(predictions)
    if not isinstance(predictions, tf.Tensor):
        _fail(
            mode,
            f"predictions must be a tf.Tensor or a dict of tensors, got {type(predictions).__name__}",
            InvalidTypeError,
        )
    return predictions


def _checked_metrics(mode: str, metrics: Any) -> dict[str, Any]:
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        _fail(
            mode,
            f"eval_metric_ops must be a dict {{name: (value, update_op) or Metric}}, got {type(metrics).__name__}",
            InvalidTypeError,
        )
    for name, metric in metrics.items():
        _metric_pair(mode, name, metric)
    return dict(metrics)


def _metric_pair(mode: str, name: Any, metric: Any) -> MetricPair:
    if not isinstance(name, str) or not name:
        _fail(mode, f"eval_metric_ops keys must be non-empty strings, got {name!r}", InvalidTypeError)
    if hasattr(metric, "result") and hasattr(metric, "update_state"):  # a tf.keras.metrics.Metric
        updates = list(getattr(metric, "updates", None) or [])
        if not updates:
            _fail(
                mode,
                f"eval_metric_ops[{name!r}] is a Keras Metric whose update_state(...) was never called inside model_fn",
            )
        for variable in metric.variables:  # Keras keeps them in no collection: make them metric variables
            for key in (tf.GraphKeys.LOCAL_VARIABLES, tf.GraphKeys.METRIC_VARIABLES):
                if variable not in tf.get_collection(key):
                    tf.add_to_collection(key, variable)
        return metric.result(), tf.group(*updates)
    if not isinstance(metric, (tuple, list)) or len(metric) != 2:
        _fail(
            mode,
            f"eval_metric_ops[{name!r}] must be a (value, update_op) pair as tf.metrics.* returns, "
            f"or a tf.keras.metrics.Metric, got {type(metric).__name__}: {metric!r}",
            InvalidTypeError,
        )
    value, update = metric
    if not isinstance(value, tf.Tensor) or not isinstance(update, (tf.Tensor, tf.Operation)):
        _fail(
            mode,
            f"eval_metric_ops[{name!r}] must hold (tf.Tensor, tf.Tensor or tf.Operation), got "
            f"({type(value).__name__}, {type(update).__name__})",
            InvalidTypeError,
        )
    return value, update


def _checked_export_outputs(mode: str, export_outputs: Any, predictions: Any) -> dict[str, Any] | None:
    if export_outputs is not None:
        if not isinstance(export_outputs, Mapping):
            _fail(
                mode,
                f"export_outputs must be a dict {{signature name: ExportOutput}}, got {type(export_outputs).__name__}",
                InvalidTypeError,
            )
        for key, output in export_outputs.items():
            if not isinstance(output, export_output_lib.ExportOutput):
                _fail(
                    mode,
                    f"export_outputs[{key!r}] must be an export.PredictOutput, ClassificationOutput or "
                    f"RegressionOutput, got {type(output).__name__}",
                    InvalidTypeError,
                )
    if mode != ModeKeys.PREDICT:
        return dict(export_outputs) if export_outputs else None
    return export_utils.get_export_outputs(export_outputs, predictions)
