"""``DNNClassifier``, ``DNNRegressor``, ``LinearClassifier``, ``LinearRegressor`` and ``DNNLinearCombined*``.

tf.estimator 2.15's v1 canned estimators (``tf.compat.v1.estimator.*``, the premade-estimator
guide's) on ``tf.compat.v1.feature_column`` columns: each is an ``Estimator`` whose ``model_fn``
makes the logits (``networks.py``) and hands them to a head (``heads.py``), so it trains,
evaluates, predicts, exports and is tracked in MLflow like any Estimator. Their arguments and
defaults are tf.estimator's; ``input_layer_partitioner`` and ``partitioner`` (for parameter
servers) are accepted and not used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..._tf import tf
from ...errors import InvalidValueError
from ..estimator import Estimator
from . import networks
from .heads import SUM, RegressionHead, classification_head


def _hidden(hidden_units: Any) -> list[int]:
    units = list(hidden_units or ())
    if not units or not all(isinstance(u, int) and u > 0 for u in units):
        raise InvalidValueError(f"hidden_units must be a list of positive ints, got {hidden_units!r}")
    return units


class _Canned(Estimator):
    """An Estimator over ``logits_fn(features, mode, units)`` and ``head``, trained by ``train_op_fn(loss)``."""

    def __init__(
        self, logits_fn: Callable, train_op_fn: Callable, head: Any, model_dir, config, warm_start_from, **extra
    ):
        def model_fn(features, labels, mode, config):
            logits = logits_fn(features, mode, head.logits_dimension)
            return head.create_estimator_spec(features, mode, logits, labels, train_op_fn)

        model_fn.__name__ = type(self).__name__  # the MLflow experiment's default name
        super().__init__(model_fn, model_dir=model_dir, config=config, warm_start_from=warm_start_from, **extra)


def _dnn(hidden_units, feature_columns, optimizer, activation_fn, dropout, batch_norm) -> tuple[Callable, Callable]:
    units, columns = _hidden(hidden_units), networks.checked_columns(feature_columns, "feature_columns")

    def logits(features, mode, dimension):
        return networks.dnn_logits(features, columns, units, dimension, mode, activation_fn, dropout, batch_norm)

    def train_op(loss):
        return networks.optimizer_of(optimizer, networks.DNN_LEARNING_RATE).minimize(
            loss, global_step=tf.train.get_global_step()
        )

    return logits, train_op


def _linear(feature_columns, optimizer, sparse_combiner) -> tuple[Callable, Callable]:
    columns = networks.checked_columns(feature_columns, "feature_columns")

    def logits(features, mode, dimension):
        return networks.linear_logits(features, columns, dimension, sparse_combiner)

    def train_op(loss):
        rate = networks.linear_learning_rate(columns)
        return networks.optimizer_of(optimizer, rate).minimize(loss, global_step=tf.train.get_global_step())

    return logits, train_op


def _combined(linear_columns, linear_optimizer, dnn_columns, dnn_optimizer, hidden_units, activation, dropout,
              batch_norm, sparse_combiner) -> tuple[Callable, Callable]:  # fmt: skip
    linear_columns, dnn_columns = list(linear_columns or ()), list(dnn_columns or ())
    if not linear_columns and not dnn_columns:
        raise InvalidValueError("Either linear_feature_columns or dnn_feature_columns must be defined.")
    units = _hidden(hidden_units) if dnn_columns else []

    def logits(features, mode, dimension):
        parts = []
        if dnn_columns:
            parts.append(
                networks.dnn_logits(features, dnn_columns, units, dimension, mode, activation, dropout, batch_norm)
            )
        if linear_columns:
            parts.append(networks.linear_logits(features, linear_columns, dimension, sparse_combiner))
        return tf.add_n(parts) if len(parts) > 1 else parts[0]

    def train_op(loss):
        steps = []
        if dnn_columns:
            optimizer = networks.optimizer_of(dnn_optimizer, networks.COMBINED_DNN_LEARNING_RATE)
            steps.append(networks.minimize(optimizer, loss, "dnn"))
        if linear_columns:
            rate = min(networks.COMBINED_LINEAR_LEARNING_RATE, networks.linear_learning_rate(linear_columns))
            steps.append(networks.minimize(networks.optimizer_of(linear_optimizer, rate), loss, "linear"))
        with tf.control_dependencies([tf.group(*steps)]):
            return tf.assign_add(tf.train.get_global_step(), 1)

    return logits, train_op


class DNNClassifier(_Canned):
    """A feed-forward network classifying into ``n_classes`` (tf.estimator's ``DNNClassifier``)."""

    def __init__(self, hidden_units: Sequence[int], feature_columns: Sequence[Any], model_dir: str | None = None,
                 n_classes: int = 2, weight_column: Any = None, label_vocabulary: Sequence[str] | None = None,
                 optimizer: Any = "Adagrad", activation_fn: Callable = tf.nn.relu, dropout: float | None = None,
                 input_layer_partitioner: Any = None, config: Any = None, warm_start_from: Any = None,
                 loss_reduction: str = SUM, batch_norm: bool = False, **extra: Any):  # fmt: skip
        logits, train_op = _dnn(hidden_units, feature_columns, optimizer, activation_fn, dropout, batch_norm)
        head = classification_head(n_classes, weight_column, label_vocabulary, loss_reduction)
        super().__init__(logits, train_op, head, model_dir, config, warm_start_from, **extra)


class DNNRegressor(_Canned):
    """A feed-forward network predicting ``label_dimension`` values (tf.estimator's ``DNNRegressor``)."""

    def __init__(self, hidden_units: Sequence[int], feature_columns: Sequence[Any], model_dir: str | None = None,
                 label_dimension: int = 1, weight_column: Any = None, optimizer: Any = "Adagrad",
                 activation_fn: Callable = tf.nn.relu, dropout: float | None = None,
                 input_layer_partitioner: Any = None, config: Any = None, warm_start_from: Any = None,
                 loss_reduction: str = SUM, batch_norm: bool = False, **extra: Any):  # fmt: skip
        logits, train_op = _dnn(hidden_units, feature_columns, optimizer, activation_fn, dropout, batch_norm)
        head = RegressionHead(label_dimension, weight_column, loss_reduction)
        super().__init__(logits, train_op, head, model_dir, config, warm_start_from, **extra)


class LinearClassifier(_Canned):
    """A linear model classifying into ``n_classes`` (tf.estimator's ``LinearClassifier``)."""

    def __init__(self, feature_columns: Sequence[Any], model_dir: str | None = None, n_classes: int = 2,
                 weight_column: Any = None, label_vocabulary: Sequence[str] | None = None, optimizer: Any = "Ftrl",
                 config: Any = None, partitioner: Any = None, warm_start_from: Any = None, loss_reduction: str = SUM,
                 sparse_combiner: str = "sum", **extra: Any):  # fmt: skip
        logits, train_op = _linear(feature_columns, optimizer, sparse_combiner)
        head = classification_head(n_classes, weight_column, label_vocabulary, loss_reduction)
        super().__init__(logits, train_op, head, model_dir, config, warm_start_from, **extra)


class LinearRegressor(_Canned):
    """A linear model predicting ``label_dimension`` values (tf.estimator's ``LinearRegressor``)."""

    def __init__(self, feature_columns: Sequence[Any], model_dir: str | None = None, label_dimension: int = 1,
                 weight_column: Any = None, optimizer: Any = "Ftrl", config: Any = None, partitioner: Any = None,
                 warm_start_from: Any = None, loss_reduction: str = SUM, sparse_combiner: str = "sum",
                 **extra: Any):  # fmt: skip
        logits, train_op = _linear(feature_columns, optimizer, sparse_combiner)
        head = RegressionHead(label_dimension, weight_column, loss_reduction)
        super().__init__(logits, train_op, head, model_dir, config, warm_start_from, **extra)


class DNNLinearCombinedClassifier(_Canned):
    """Wide (linear) and deep (DNN) logits summed, classifying into ``n_classes``."""

    def __init__(self, model_dir: str | None = None, linear_feature_columns: Sequence[Any] | None = None,
                 linear_optimizer: Any = "Ftrl", dnn_feature_columns: Sequence[Any] | None = None,
                 dnn_optimizer: Any = "Adagrad", dnn_hidden_units: Sequence[int] | None = None,
                 dnn_activation_fn: Callable = tf.nn.relu, dnn_dropout: float | None = None, n_classes: int = 2,
                 weight_column: Any = None, label_vocabulary: Sequence[str] | None = None,
                 input_layer_partitioner: Any = None, config: Any = None, warm_start_from: Any = None,
                 loss_reduction: str = SUM, batch_norm: bool = False, linear_sparse_combiner: str = "sum",
                 **extra: Any):  # fmt: skip
        logits, train_op = _combined(linear_feature_columns, linear_optimizer, dnn_feature_columns, dnn_optimizer,
                                     dnn_hidden_units, dnn_activation_fn, dnn_dropout, batch_norm,
                                     linear_sparse_combiner)  # fmt: skip
        head = classification_head(n_classes, weight_column, label_vocabulary, loss_reduction)
        super().__init__(logits, train_op, head, model_dir, config, warm_start_from, **extra)


class DNNLinearCombinedRegressor(_Canned):
    """Wide (linear) and deep (DNN) logits summed, predicting ``label_dimension`` values."""

    def __init__(self, model_dir: str | None = None, linear_feature_columns: Sequence[Any] | None = None,
                 linear_optimizer: Any = "Ftrl", dnn_feature_columns: Sequence[Any] | None = None,
                 dnn_optimizer: Any = "Adagrad", dnn_hidden_units: Sequence[int] | None = None,
                 dnn_activation_fn: Callable = tf.nn.relu, dnn_dropout: float | None = None, label_dimension: int = 1,
                 weight_column: Any = None, input_layer_partitioner: Any = None, config: Any = None,
                 warm_start_from: Any = None, loss_reduction: str = SUM, batch_norm: bool = False,
                 linear_sparse_combiner: str = "sum", **extra: Any):  # fmt: skip
        logits, train_op = _combined(linear_feature_columns, linear_optimizer, dnn_feature_columns, dnn_optimizer,
                                     dnn_hidden_units, dnn_activation_fn, dnn_dropout, batch_norm,
                                     linear_sparse_combiner)  # fmt: skip
        head = RegressionHead(label_dimension, weight_column, loss_reduction)
        super().__init__(logits, train_op, head, model_dir, config, warm_start_from, **extra)
