"""One process of a 2-worker ``MultiWorkerMirroredStrategy`` job (TF_CONFIG names the cluster and this
task); every worker runs this same script with the same model directory.

``distribute_worker.py MODEL_DIR EPOCHS`` trains EPOCHS epochs of 4 steps (this worker's half of the
training data, batches of 16), validating and saving after each, and prints ``saved <step>`` after
each save, then ``done <step>``. EPOCHS 0 trains until a worker is lost: it prints
``lost <seconds since the last completed step>`` and exits with 3.
"""

import sys
import time
from pathlib import Path

import numpy as np

from elistimator_tracking import Elistimator, EvaluationSpec, PredictSpec, TrainSpec
from elistimator_tracking._tf import tf, tf2
from elistimator_tracking.errors import WorkerLostError

PEER_TIMEOUT_MS = 20_000


def model_fn(features, is_training, params):
    hidden = tf.layers.dense(features["x"], 8, activation=tf.nn.relu, name="hidden")
    logits = tf.layers.dense(hidden, 2, name="logits")
    loss = tf.losses.sparse_softmax_cross_entropy(features["y"], logits)
    train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss, tf.train.get_global_step())
    classes = tf.argmax(logits, axis=1, output_type=tf.int32)
    return (
        TrainSpec(loss, train_op),
        EvaluationSpec(loss, {"accuracy": tf.metrics.accuracy(features["y"], classes)}),
        PredictSpec({"classes": classes}),
    )


def examples(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int32)


def input_fn(x, y):
    return lambda: tf.data.Dataset.from_tensor_slices({"x": x, "y": y}).batch(16)


def main() -> None:
    model_dir, epochs = Path(sys.argv[1]), int(sys.argv[2])
    strategy = tf2.distribute.MultiWorkerMirroredStrategy()
    task = strategy.cluster_resolver.task_id
    x, y = examples(128, 0)
    mine = slice(64 * task, 64 * (task + 1))  # each worker reads its half of the training data
    est = Elistimator(
        model_fn,
        model_dir,
        verbose=False,
        distribute=strategy,
        run_name="two-workers",
        session_args={"config": tf.ConfigProto(operation_timeout_in_ms=PEER_TIMEOUT_MS)},
    )
    with est:
        est.setup(input_fn(x[mine], y[mine]), input_fn(*examples(40, 1)))
        done = 0
        while epochs == 0 or done < epochs:
            last = time.monotonic()
            try:
                for _ in range(4):
                    est.train(1)
                    last = time.monotonic()
                est.validate()
            except WorkerLostError as error:
                print("lost", round(time.monotonic() - last, 1), str(error).replace("\n", " "), flush=True)
                sys.exit(3)
            est.save_ckpt()
            print("saved", est.global_step, flush=True)
            done += 1
        print("done", est.global_step, flush=True)


if __name__ == "__main__":
    main()
