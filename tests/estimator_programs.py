"""Small tf.estimator programs for the estimator tests, written as tf.estimator 1.15 programs were.

Only the import line differs from a TensorFlow 1.15 program: ``tf_estimator`` is
``elistimator_tracking.estimator`` instead of ``tf.estimator``. Run as a script, it trains
(``train <model_dir> <max_steps>``), which is how the crash test kills a real process.
"""

from __future__ import annotations

import sys

import numpy as np
import tensorflow.compat.v1 as tf

from elistimator_tracking import estimator as tf_estimator


def blobs(n: int = 96, seed: int = 0):
    rng = np.random.RandomState(seed)
    x = rng.randn(n, 3).astype(np.float32)
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int32)


def model_fn(features, labels, mode, params):
    """A two-layer classifier over ``features['x']`` with a summary, a metric and export outputs."""
    hidden = tf.layers.dense(features["x"], 8, activation=tf.nn.relu)
    logits = tf.layers.dense(hidden, 2)
    classes = tf.argmax(logits, 1)
    predictions = {"classes": classes, "probabilities": tf.nn.softmax(logits)}
    if mode == tf_estimator.ModeKeys.PREDICT:
        return tf_estimator.EstimatorSpec(
            mode,
            predictions=predictions,
            export_outputs={
                "serving_default": tf_estimator.export.PredictOutput(predictions),
                "classify": tf_estimator.export.ClassificationOutput(scores=predictions["probabilities"]),
            },
        )
    loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
    tf.summary.scalar("cross_entropy", loss)
    if mode == tf_estimator.ModeKeys.EVAL:
        return tf_estimator.EstimatorSpec(
            mode, loss=loss, eval_metric_ops={"accuracy": tf.metrics.accuracy(labels, classes)}
        )
    optimizer = tf.train.GradientDescentOptimizer(params.get("learning_rate", 0.1))
    train_op = optimizer.minimize(loss, global_step=tf.train.get_global_step())
    return tf_estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)


def train_input_fn(batch_size: int = 16, repeat: bool = True):
    def input_fn():
        x, y = blobs()
        dataset = tf.data.Dataset.from_tensor_slices(({"x": x}, y)).shuffle(96, seed=1)
        return (dataset.repeat() if repeat else dataset).batch(batch_size)

    return input_fn


def eval_input_fn():
    x, y = blobs(48, seed=1)
    return tf.data.Dataset.from_tensor_slices(({"x": x}, y)).batch(16)


def predict_input_fn():
    x, _ = blobs(10, seed=2)
    return tf.data.Dataset.from_tensor_slices({"x": x}).batch(4)


def serving_input_receiver_fn():
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    return tf_estimator.export.ServingInputReceiver({"x": x}, {"x": x})


def main(argv) -> None:
    """``train <model_dir> <max_steps>``: train with a checkpoint every 10 steps."""
    _, model_dir, max_steps = argv[1:]
    config = tf_estimator.RunConfig(save_checkpoints_steps=10, save_summary_steps=5)
    estimator = tf_estimator.Estimator(model_fn, model_dir=model_dir, config=config, params={"learning_rate": 0.1})
    estimator.train(train_input_fn(), max_steps=int(max_steps))


if __name__ == "__main__":
    main(sys.argv)
