"""A script that never calls close(): ``exit_worker.py MODEL_DIR TRACKING_URI HOW [package-at-exit]``.

It trains an epoch, validates and saves a checkpoint (tracked to TRACKING_URI), prints
``saved``, then ends as HOW says: ``end`` (falls off the end of the script),
``raise`` (an unhandled RuntimeError), ``wait`` (sleeps until a signal ends it), ``stdin``
(ends when a line arrives on stdin), ``exit3`` (``sys.exit(3)``).

``package-at-exit``: the checkpoint's logged model is packaged only once the interpreter is
exiting (the delivery thread waits until the main thread is closing the run at exit), prints
``packaging at exit`` and takes 5 s more: a signal sent then lands while it is being packaged.
"""

import signal
import sys
import threading
import time
import traceback

import numpy as np
import tensorflow.compat.v1 as tf

from elistimator_tracking import Elistimator, EvaluationSpec, PredictSpec, TrainSpec


def model_fn(features, is_training, params):
    logits = tf.layers.dense(features["x"], 2)
    loss = tf.losses.sparse_softmax_cross_entropy(features["y"], logits)
    train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss, tf.train.get_global_step())
    return TrainSpec(loss, train_op), EvaluationSpec(loss), PredictSpec({"logits": logits})


def input_fn():
    x = np.random.default_rng(0).normal(size=(32, 2)).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices({"x": x, "y": (x[:, 0] > 0).astype(np.int32)}).batch(8)


def package_at_exit():
    from elistimator_tracking.tracking import logged_models

    package = logged_models.Packager.package

    def slowly(*args, **kwargs):
        main = threading.main_thread()
        while "_close_all" not in "".join(traceback.format_stack(sys._current_frames()[main.ident])):
            time.sleep(0.05)
        print("packaging at exit", flush=True)
        time.sleep(5)
        return package(*args, **kwargs)

    logged_models.Packager.package = slowly


# Ctrl-C as in a terminal: a process started in the background of a non-interactive shell (a CI job,
# `cmd &`) inherits SIGINT ignored, and CPython then leaves it ignored: the signal would do nothing
signal.signal(signal.SIGINT, signal.default_int_handler)
model_dir, tracking_uri, how = sys.argv[1:4]
if sys.argv[4:] == ["package-at-exit"]:
    package_at_exit()
estimator = Elistimator(model_fn, model_dir, verbose=False, tracking=tracking_uri, experiment="exit")
estimator.setup(input_fn, input_fn)
estimator.train().validate()
estimator.save_ckpt()
print("saved", flush=True)
if how == "raise":
    raise RuntimeError("the script failed")
if how == "wait":
    time.sleep(600)
if how == "stdin":
    sys.stdin.readline()
if how == "exit3":
    sys.exit(3)
