"""Trains forever, validating and saving a checkpoint every 3 steps; the crash tests kill it.

``crash_worker.py MODEL_DIR wide|small``: continues the model in MODEL_DIR when it holds
checkpoints, else starts a new one (``wide``: about 1M weights, 4 MB a checkpoint, so a save
takes long enough to be hit at a random moment). Tracks to MLFLOW_TRACKING_URI; a named crash
point (ELISTIMATOR_CRASH_AT) ends it at an exact moment. Prints ``ready <step>``, then
``saving <step>`` / ``saved <step>`` around each save.
"""

import sys
from pathlib import Path

import numpy as np
import tensorflow.compat.v1 as tf

from elistimator_tracking import Elistimator, EvaluationSpec, PredictSpec, TrainSpec, metadata
from elistimator_tracking.model_dir import ModelDirectory

FEATURES = 256


def model_fn(features, is_training, params):
    hidden = tf.layers.dense(features["x"], params["hidden"], activation=tf.nn.relu)
    logits = tf.layers.dense(hidden, 2)
    loss = tf.losses.sparse_softmax_cross_entropy(features["y"], logits)
    train_op = tf.train.GradientDescentOptimizer(0.01).minimize(loss, tf.train.get_global_step())
    return TrainSpec(loss, train_op), EvaluationSpec(loss), PredictSpec({"logits": logits})


def input_fn():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, FEATURES)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices({"x": x, "y": y}).batch(16)


def main() -> None:
    model_dir, size = Path(sys.argv[1]), sys.argv[2]
    directory = ModelDirectory(model_dir)
    resume = metadata.exists(directory) and metadata.read(directory).index.steps()
    estimator = (
        Elistimator.from_disk(model_dir, verbose=False)
        if resume
        else Elistimator(model_fn, model_dir, params={"hidden": 4096 if size == "wide" else 8}, verbose=False)
    )
    estimator.setup(input_fn, input_fn, train_saver_args={"max_to_keep": 3})
    print("ready", estimator.global_step, flush=True)
    while True:
        estimator.train(3).validate()
        print("saving", estimator.global_step, flush=True)
        estimator.save_ckpt()
        print("saved", estimator.global_step, flush=True)


if __name__ == "__main__":
    main()
