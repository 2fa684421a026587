"""Write ``tests/data/tf_estimator_model_dir``: a model directory as the real tf.estimator 2.15 leaves it.

A migrating user's directory: ``checkpoint`` and ``model.ckpt-1500.*`` of the blobs classifier of
``tests/estimator_programs.py`` (the same model function), trained 1,500 steps by tf.estimator. Its
event files, ``graph.pbtxt`` and ``eval/`` are left out to keep the repository small (they play no
part in continuing it). ``observed.json`` holds what tf.estimator said about it then: ``evaluate`` on
the evaluation data, the first predictions, and the global step after ``train(steps=10)`` of a new
Estimator on a copy.

    ESTIMATOR_SIDE=real /work/venvs/tf215/bin/python tests/estimator_parity/make_tf_estimator_dir.py
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TARGET = HERE.parent / "data" / "tf_estimator_model_dir"
sys.path.insert(0, str(HERE))


def blobs(n: int = 96, seed: int = 0):  # estimator_programs.blobs
    rng = np.random.RandomState(seed)
    x = rng.randn(n, 3).astype(np.float32)
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int32)


def program(tf, E):
    """estimator_programs.model_fn and its input functions, for this side."""

    def model_fn(features, labels, mode, params):
        hidden = tf.layers.dense(features["x"], 8, activation=tf.nn.relu)
        logits = tf.layers.dense(hidden, 2)
        classes = tf.argmax(logits, 1)
        predictions = {"classes": classes, "probabilities": tf.nn.softmax(logits)}
        if mode == E.ModeKeys.PREDICT:
            return E.EstimatorSpec(mode, predictions=predictions)
        loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
        tf.summary.scalar("cross_entropy", loss)
        if mode == E.ModeKeys.EVAL:
            return E.EstimatorSpec(mode, loss=loss, eval_metric_ops={"accuracy": tf.metrics.accuracy(labels, classes)})
        optimizer = tf.train.GradientDescentOptimizer(params.get("learning_rate", 0.1))
        return E.EstimatorSpec(mode, loss=loss, train_op=optimizer.minimize(loss, tf.train.get_global_step()))

    def train_input_fn():
        x, y = blobs()
        return tf.data.Dataset.from_tensor_slices(({"x": x}, y)).shuffle(96, seed=1).repeat().batch(16)

    def eval_input_fn():
        x, y = blobs(48, seed=1)
        return tf.data.Dataset.from_tensor_slices(({"x": x}, y)).batch(16)

    def predict_input_fn():
        x, _ = blobs(10, seed=2)
        return tf.data.Dataset.from_tensor_slices({"x": x}).batch(4)

    return model_fn, train_input_fn, eval_input_fn, predict_input_fn


def main() -> None:
    import side

    if side.name() != "real":
        raise SystemExit("run it on the real tf.estimator: ESTIMATOR_SIDE=real")
    tf, E = side.load()
    model_fn, train_input_fn, eval_input_fn, predict_input_fn = program(tf, E)
    shutil.rmtree(TARGET, ignore_errors=True)
    config = E.RunConfig(save_checkpoints_steps=500, keep_checkpoint_max=1, tf_random_seed=7)
    est = E.Estimator(model_fn, str(TARGET), config=config, params={"learning_rate": 0.1})
    est.train(train_input_fn, steps=1500)
    metrics = est.evaluate(eval_input_fn)
    predictions = list(est.predict(predict_input_fn))
    for leftover in [*glob.glob(str(TARGET / "events.out.*")), str(TARGET / "graph.pbtxt")]:
        os.remove(leftover)
    shutil.rmtree(TARGET / "eval", ignore_errors=True)
    with tempfile.TemporaryDirectory() as work:
        copy = shutil.copytree(TARGET, Path(work) / "copy")
        again = E.Estimator(model_fn, str(copy), config=config, params={"learning_rate": 0.1})
        again.train(train_input_fn, steps=10)
        continued = int(again.get_variable_value("global_step"))
    observed = {
        "where": "tensorflow 2.15.1 + tensorflow-estimator 2.15.0 (tests/estimator_parity/make_tf_estimator_dir.py)",
        "evaluate": {key: float(value) for key, value in metrics.items()},
        "probabilities": [p["probabilities"].tolist() for p in predictions],
        "global_step_after_train_steps_10": continued,
    }
    (TARGET / "observed.json").write_text(json.dumps(observed, indent=1) + "\n")
    print(json.dumps(observed["evaluate"]), continued)


if __name__ == "__main__":
    main()
