"""The heads of tf.estimator 2.15's canned v1 estimators: loss, predictions, metrics and export signatures.

``classification_head(n_classes)`` is the binary logistic head for two classes and the softmax
head for more; ``RegressionHead`` the mean-squared-error head. As tf.estimator's: the training
loss is the weighted SUM over the batch (``loss_reduction``), ``average_loss`` the mean per
example; the metric names (``accuracy``, ``auc``, ``label/mean``, ...), prediction keys
(``class_ids``, ``probabilities``, ``logistic``, ...) and signatures (``serving_default`` and
``classification``/``regression`` outputs, ``predict``) are tf.estimator's
(``canned/head.py``, ``metric_keys.py``, ``prediction_keys.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..._tf import tf
from ...errors import InvalidValueError
from .. import export
from ..spec import EstimatorSpec, ModeKeys

SUM = tf.losses.Reduction.SUM


class _Head:
    """What every head does with ``logits`` in a mode: the spec (the subclass gives predictions and metrics)."""

    logits_dimension = 1

    # what a head gives: its predictions, serving outputs, labels as the loss reads them, loss and metrics
    def predictions(self, logits: tf.Tensor) -> dict:
        raise NotImplementedError

    def outputs(self, predictions: dict) -> dict:
        raise NotImplementedError

    def label_values(self, labels: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def unreduced_loss(self, labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def metrics(self, labels, predictions, weights, unreduced) -> dict:
        raise NotImplementedError

    def __init__(self, weight_column: Any = None, loss_reduction: str = SUM):
        if loss_reduction not in tf.losses.Reduction.all() or loss_reduction == tf.losses.Reduction.NONE:
            raise InvalidValueError(f"Invalid loss_reduction: {loss_reduction}")
        self.weight_column, self.loss_reduction = weight_column, loss_reduction

    def create_estimator_spec(
        self, features: Mapping, mode: str, logits: tf.Tensor, labels: Any, train_op_fn: Callable
    ) -> EstimatorSpec:
        if logits.shape.rank is not None and logits.shape[-1] not in (None, self.logits_dimension):
            raise InvalidValueError(
                f"logits shape must be [D0, D1, ... DN, {self.logits_dimension}], got {logits.shape}"
            )
        predictions = self.predictions(logits)
        if mode == ModeKeys.PREDICT:
            return EstimatorSpec(mode, predictions=self.served(predictions), export_outputs=self.outputs(predictions))
        if labels is None:
            raise InvalidValueError(f"labels must not be None in mode {mode!r}: the canned estimators need them")
        labels = self.label_values(_as_column(labels, self.logits_dimension))
        unreduced = self.unreduced_loss(labels, logits)
        weights = self._weights(features, unreduced)
        loss = tf.losses.compute_weighted_loss(unreduced, weights, reduction=self.loss_reduction)
        if mode == ModeKeys.EVAL:
            metrics = self.metrics(labels, predictions, weights, unreduced)
            return EstimatorSpec(mode, predictions=predictions, loss=loss, eval_metric_ops=metrics)
        train_op = train_op_fn(loss)
        updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        if updates:
            train_op = tf.group(train_op, *updates)
        tf.summary.scalar("loss", loss)
        if self.loss_reduction == SUM:
            tf.summary.scalar("average_loss", loss / tf.reduce_sum(weights * tf.ones_like(unreduced)))
        return EstimatorSpec(mode, predictions=predictions, loss=loss, train_op=train_op)

    def _weights(self, features: Mapping, unreduced: tf.Tensor) -> tf.Tensor:
        if self.weight_column is None:
            return tf.ones_like(unreduced)
        key = self.weight_column if isinstance(self.weight_column, str) else self.weight_column.key
        weights = tf.cast(features[key], tf.float32)
        return tf.broadcast_to(tf.reshape(weights, [-1, 1]), tf.shape(unreduced))

    def served(self, predictions: dict) -> dict:
        return predictions


def _as_column(labels: tf.Tensor, dimension: int) -> tf.Tensor:
    """Labels of shape ``[batch]`` or ``[batch, dimension]`` as ``[batch, dimension]``."""
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 1:
        labels = tf.expand_dims(labels, -1)
    return labels


class _ClassificationHead(_Head):
    def __init__(self, n_classes: int, weight_column: Any, label_vocabulary: Sequence[str] | None, loss_reduction: str):
        super().__init__(weight_column, loss_reduction)
        if label_vocabulary is not None and (
            not isinstance(label_vocabulary, (list, tuple)) or len(label_vocabulary) != n_classes
        ):
            raise InvalidValueError(
                f"label_vocabulary must be a list of n_classes ({n_classes}) strings, got {label_vocabulary!r}"
            )
        self.n_classes, self.vocabulary = n_classes, list(label_vocabulary) if label_vocabulary else None

    def label_values(self, labels: tf.Tensor) -> tf.Tensor:
        """Class ids of the labels (looked up in ``label_vocabulary`` when given), checked to be in range."""
        if self.vocabulary is not None:
            if labels.dtype != tf.string:
                raise InvalidValueError("Labels dtype should be string if there is a vocabulary.")
            labels = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(self.vocabulary, list(range(self.n_classes)), value_dtype=tf.int64),
                -1,
            ).lookup(labels)
        elif labels.dtype == tf.string:
            raise InvalidValueError("Labels must be integer class ids, or strings with a label_vocabulary.")
        labels = tf.cast(labels, tf.int64)
        in_range = tf.debugging.assert_less(
            labels, tf.cast(self.n_classes, tf.int64), message="Labels must <= n_classes - 1"
        )
        non_negative = tf.debugging.assert_non_negative(labels, message="Labels must >= 0")
        with tf.control_dependencies([in_range, non_negative]):
            return tf.identity(labels)

    def _classes(self, class_ids: tf.Tensor) -> tf.Tensor:
        if self.vocabulary is None:
            return tf.strings.as_string(class_ids, name="str_classes")
        return tf.gather(tf.constant(self.vocabulary), class_ids)

    def _all(self, logits: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        batch = tf.shape(logits)[0]
        ids = tf.tile(tf.expand_dims(tf.range(self.n_classes), 0), [batch, 1])
        names = tf.constant(self.vocabulary) if self.vocabulary else tf.strings.as_string(tf.range(self.n_classes))
        return ids, tf.tile(tf.expand_dims(names, 0), [batch, 1])

    def _class_predictions(self, logits: tf.Tensor, class_logits: tf.Tensor, **extra: tf.Tensor) -> dict:
        """tf.estimator's classifier predictions: the class of the largest of ``class_logits``, all classes."""
        class_ids = tf.expand_dims(tf.argmax(class_logits, axis=-1), -1, name="class_ids")
        all_ids, all_names = self._all(logits)
        return {
            "logits": logits,
            **extra,
            "probabilities": tf.nn.softmax(class_logits, name="probabilities"),
            "class_ids": class_ids,
            "classes": self._classes(class_ids),
            "all_class_ids": all_ids,
            "all_classes": all_names,
        }

    def _classification(self, predictions: dict) -> Any:
        _, names = self._all(predictions["logits"])
        return export.ClassificationOutput(scores=predictions["probabilities"], classes=names)


class BinaryHead(_ClassificationHead):
    """Two classes: one logit, sigmoid cross entropy."""

    def __init__(self, weight_column=None, label_vocabulary=None, loss_reduction=SUM):
        super().__init__(2, weight_column, label_vocabulary, loss_reduction)

    def predictions(self, logits: tf.Tensor) -> dict:
        with tf.name_scope("head/predictions"):
            two_class_logits = tf.concat([tf.zeros_like(logits), logits], axis=-1, name="two_class_logits")
            return self._class_predictions(logits, two_class_logits, logistic=tf.sigmoid(logits, name="logistic"))

    def unreduced_loss(self, labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        return tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, tf.float32), logits=logits)

    def metrics(self, labels, predictions, weights, unreduced) -> dict:
        with tf.name_scope("metrics"):
            class_ids, logistic = predictions["class_ids"], predictions["logistic"]
            label_mean = tf.metrics.mean(tf.cast(labels, tf.float32), weights=weights, name="label/mean")
            return {
                "average_loss": tf.metrics.mean(unreduced, weights=weights, name="average_loss"),
                "accuracy": tf.metrics.accuracy(labels, class_ids, weights=weights, name="accuracy"),
                "precision": tf.metrics.precision(labels, class_ids, weights=weights, name="precision"),
                "recall": tf.metrics.recall(labels, class_ids, weights=weights, name="recall"),
                "prediction/mean": tf.metrics.mean(logistic, weights=weights, name="prediction/mean"),
                "label/mean": label_mean,
                "accuracy_baseline": (
                    tf.maximum(label_mean[0], 1.0 - label_mean[0]),
                    tf.maximum(label_mean[1], 1.0 - label_mean[1]),
                ),
                "auc": tf.metrics.auc(labels, logistic, weights=weights, name="auc"),
                "auc_precision_recall": tf.metrics.auc(labels, logistic, weights=weights, curve="PR", name="auc_pr"),
            }

    def outputs(self, predictions: dict) -> dict:
        classification = self._classification(predictions)
        return {
            "serving_default": classification,
            "classification": classification,
            "regression": export.RegressionOutput(value=predictions["logistic"]),
            "predict": export.PredictOutput(predictions),
        }


class MultiClassHead(_ClassificationHead):
    """More than two classes: ``n_classes`` logits, softmax cross entropy."""

    def __init__(self, n_classes: int, weight_column=None, label_vocabulary=None, loss_reduction=SUM):
        if not isinstance(n_classes, int) or n_classes <= 2:
            raise InvalidValueError(f"n_classes must be > 2: {n_classes}.")
        super().__init__(n_classes, weight_column, label_vocabulary, loss_reduction)
        self.logits_dimension = n_classes

    def predictions(self, logits: tf.Tensor) -> dict:
        with tf.name_scope("head/predictions"):
            return self._class_predictions(logits, logits)

    def unreduced_loss(self, labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        loss = tf.losses.sparse_softmax_cross_entropy(labels, logits, reduction=tf.losses.Reduction.NONE)
        return tf.expand_dims(loss, -1) if loss.shape.rank == 1 else loss

    def metrics(self, labels, predictions, weights, unreduced) -> dict:
        with tf.name_scope("metrics"):
            return {
                "average_loss": tf.metrics.mean(unreduced, weights=weights, name="average_loss"),
                "accuracy": tf.metrics.accuracy(labels, predictions["class_ids"], weights=weights, name="accuracy"),
            }

    def outputs(self, predictions: dict) -> dict:
        classification = self._classification(predictions)
        return {
            "serving_default": classification,
            "classification": classification,
            "predict": export.PredictOutput(predictions),
        }


class RegressionHead(_Head):
    """``label_dimension`` real values, mean squared error."""

    def __init__(self, label_dimension: int = 1, weight_column=None, loss_reduction=SUM):
        if not isinstance(label_dimension, int) or label_dimension < 1:
            raise InvalidValueError(f"Invalid label_dimension {label_dimension}.")
        super().__init__(weight_column, loss_reduction)
        self.logits_dimension = label_dimension

    def predictions(self, logits: tf.Tensor) -> dict:
        return {"predictions": logits, "logits": logits}

    def served(self, predictions: dict) -> dict:
        return {"predictions": predictions["predictions"]}

    def label_values(self, labels: tf.Tensor) -> tf.Tensor:
        return tf.cast(labels, tf.float32)

    def unreduced_loss(self, labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        return tf.losses.mean_squared_error(labels, logits, reduction=tf.losses.Reduction.NONE)

    def metrics(self, labels, predictions, weights, unreduced) -> dict:
        return {
            "average_loss": tf.metrics.mean(unreduced, weights=weights),
            "prediction/mean": tf.metrics.mean(predictions["predictions"], weights=weights, name="prediction/mean"),
            "label/mean": tf.metrics.mean(labels, weights=weights),
        }

    def outputs(self, predictions: dict) -> dict:
        regression = export.RegressionOutput(value=predictions["predictions"])
        served = self.served(predictions)
        return {"serving_default": regression, "regression": regression, "predict": export.PredictOutput(served)}


def classification_head(n_classes: int, weight_column=None, label_vocabulary=None, loss_reduction=SUM) -> _Head:
    """tf.estimator's ``_binary_logistic_or_multi_class_head``."""
    if not isinstance(n_classes, int) or isinstance(n_classes, bool) or n_classes < 2:
        raise InvalidValueError(f"n_classes must be > 1: {n_classes}.")
    if n_classes == 2:
        return BinaryHead(weight_column, label_vocabulary, loss_reduction)
    return MultiClassHead(n_classes, weight_column, label_vocabulary, loss_reduction)
