"""The logits of the canned estimators, with tf.estimator 2.15's variable names, and their optimizers.

``dnn_logits``: ``tf.compat.v1.feature_column.input_layer`` then dense layers ``dnn/hiddenlayer_<i>``
and ``dnn/logits``; ``linear_logits``: ``tf.compat.v1.feature_column.linear_model`` under ``linear/``.
The names are tf.estimator's, so its checkpoints warm-start (or continue) these models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from ..._tf import tf
from ...errors import InvalidTypeError, InvalidValueError
from ..spec import ModeKeys

OPTIMIZERS = {
    "Adagrad": tf.train.AdagradOptimizer,
    "Adam": tf.train.AdamOptimizer,
    "Ftrl": tf.train.FtrlOptimizer,
    "RMSProp": tf.train.RMSPropOptimizer,
    "SGD": tf.train.GradientDescentOptimizer,
}
DNN_LEARNING_RATE = 0.05  # dnn.py's _LEARNING_RATE
COMBINED_DNN_LEARNING_RATE = 0.001  # dnn_linear_combined.py's
COMBINED_LINEAR_LEARNING_RATE = 0.005


def linear_learning_rate(columns: Sequence[Any]) -> float:
    """tf.estimator's default for the linear model: ``min(0.2, 1 / sqrt(number of columns))``."""
    return min(0.2, 1.0 / math.sqrt(len(columns)))


def optimizer_of(optimizer: Any, learning_rate: float) -> tf.train.Optimizer:
    """An optimizer from a name (``'Adagrad'``, ``'Adam'``, ``'Ftrl'``, ``'RMSProp'``, ``'SGD'``, with
    ``learning_rate``), an optimizer, or a function returning one (called once per graph)."""
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise InvalidValueError(
                f"Unsupported optimizer name: {optimizer}. Supported names are: {tuple(sorted(OPTIMIZERS))}"
            )
        return OPTIMIZERS[optimizer](learning_rate=learning_rate)
    if callable(optimizer) and not isinstance(optimizer, tf.train.Optimizer):
        optimizer = optimizer()
    if not isinstance(optimizer, tf.train.Optimizer):
        raise InvalidTypeError(
            f"The given object is not an Optimizer instance. Given: {optimizer!r} (a tf.compat.v1.train optimizer)"
        )
    return optimizer


def checked_columns(columns: Any, what: str) -> list[Any]:
    columns = list(columns or ())
    if not columns:
        raise InvalidValueError(f"{what} must be given: a list of tf.compat.v1.feature_column columns")
    return columns


def dnn_logits(
    features: dict,
    columns: Sequence[Any],
    hidden_units: Sequence[int],
    units: int,
    mode: str,
    activation: Callable = tf.nn.relu,
    dropout: float | None = None,
    batch_norm: bool = False,
) -> tf.Tensor:
    """The DNN part: the input layer, ``hidden_units`` dense layers (dropout, batch norm), the logits."""
    training = mode == ModeKeys.TRAIN
    with tf.variable_scope("dnn"):
        with tf.variable_scope("input_from_feature_columns"):
            net = tf.feature_column.input_layer(features, list(columns))
        for layer, width in enumerate(hidden_units):
            net = tf.layers.dense(
                net,
                width,
                activation=activation,
                kernel_initializer=tf.glorot_uniform_initializer(),
                name=f"hiddenlayer_{layer}",
            )
            if dropout is not None and training:
                net = tf.layers.dropout(net, rate=dropout, training=True)
            if batch_norm:
                net = tf.layers.batch_normalization(
                    net, momentum=0.999, training=training, name=f"hiddenlayer_{layer}/batchnorm_{layer}"
                )
        return tf.layers.dense(net, units, kernel_initializer=tf.glorot_uniform_initializer(), name="logits")


def linear_logits(features: dict, columns: Sequence[Any], units: int, sparse_combiner: str = "sum") -> tf.Tensor:
    """The linear part: one weight per feature value and a bias (``linear/linear_model/...``)."""
    with tf.variable_scope("linear"):
        return tf.feature_column.linear_model(features, list(columns), units=units, sparse_combiner=sparse_combiner)


def minimize(optimizer: tf.train.Optimizer, loss: tf.Tensor, scope: str | None = None) -> tf.Operation:
    """``optimizer`` minimizing ``loss`` over the trainable variables of ``scope`` (all when None)."""
    variables = tf.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES, scope=scope)
    return optimizer.minimize(loss, var_list=variables or None)
