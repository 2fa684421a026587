"""The estimator front end against hand-written TensorFlow, same process, same model.

- training, steps/s: the steps inside ``Estimator.train(input_fn, steps=N)`` (hooks watching every
  step; timed by a hook) against the plain loop of ``bench/train_speed.py`` (``session.run([train_op,
  loss])`` over an in-graph iterator) for a 2-layer MLP (batch 32, where per-step overhead dominates)
  on MNIST; and the time each call spends beyond its steps (the fresh ``input_fn`` read and loaded, as
  tf.estimator read it on every call, and the checkpoint at its end);
- evaluation, s per call: the first ``evaluate`` of a new ``Estimator`` on a trained model directory
  (builds the graph and restores the checkpoint: what tf.estimator paid on *every* call) against its
  2nd and later ``evaluate`` calls (nothing rebuilt).

Sides alternate in short blocks (the order flips every repeat); the table gives medians and bests.

    python bench/estimator_speed.py --repeats 11
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import elistimator_tracking  # noqa: F401  (sets the TensorFlow environment first)
from elistimator_tracking import estimator as tf_estimator
from elistimator_tracking._tf import tf

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from mnist_data import load_mnist, mnist_dir  # noqa: E402
from train_speed import PlainLoop, alternate, mlp_model_fn, timed_rate  # noqa: E402


def model_fn(features, labels, mode):
    """``mlp_model_fn`` of train_speed.py (784-128-10), written as a tf.estimator model_fn."""
    hidden = tf.layers.dense(features["images"], 128, activation=tf.nn.relu)
    logits = tf.layers.dense(hidden, 10)
    classes = tf.argmax(logits, 1, output_type=tf.int32)
    if mode == tf_estimator.ModeKeys.PREDICT:
        return tf_estimator.EstimatorSpec(mode, predictions={"classes": classes})
    loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
    if mode == tf_estimator.ModeKeys.EVAL:
        return tf_estimator.EstimatorSpec(
            mode, loss=loss, eval_metric_ops={"accuracy": tf.metrics.accuracy(labels, classes)}
        )
    train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=tf.train.get_global_step())
    return tf_estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)


def input_fns(images, labels, batch: int):
    def train_fn():
        return (
            tf.data.Dataset.from_tensor_slices(({"images": images}, labels))
            .batch(batch)
            .prefetch(batch)
            .shuffle(1000)
            .repeat()
        )

    def eval_fn():
        return tf.data.Dataset.from_tensor_slices(({"images": images}, labels)).batch(batch).prefetch(batch)

    def plain_fn():
        return (
            tf.data.Dataset.from_tensor_slices({"images": images, "labels": labels})
            .batch(batch)
            .prefetch(batch)
            .shuffle(1000)
        )

    return train_fn, eval_fn, plain_fn


def new_estimator(model_dir: str) -> tf_estimator.Estimator:
    # checkpoints when a train() starts and ends only (None for both would save none, as in tf.estimator)
    config = tf_estimator.RunConfig(save_checkpoints_steps=10**9)
    return tf_estimator.Estimator(model_fn, model_dir, config=config, tracking=False)


class StepClock(tf.train.SessionRunHook):
    """The time after every step: the steps/s of a ``train()`` call between its first and last step."""

    def begin(self) -> None:
        self.times = []

    def after_run(self, run_context, run_values) -> None:
        self.times.append(time.perf_counter())

    def rate(self) -> float:
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


def training_rows(images, labels, steps: int, repeats: int, model_dir: str):
    """Steps/s of the plain loop and within ``Estimator.train()`` calls, and each call's overhead in s
    (its time beyond its steps: reading the fresh ``input_fn``, hooks' begin/end, the final checkpoint)."""
    train_fn, _, plain_fn = input_fns(images, labels, 32)
    plain = PlainLoop(mlp_model_fn, plain_fn, True)
    estimator = new_estimator(model_dir)
    plain.train(20), estimator.train(train_fn, steps=20)  # warm-up
    overheads = []

    def ours() -> float:
        clock = StepClock()
        start = time.perf_counter()
        estimator.train(train_fn, steps=steps, hooks=[clock])
        overheads.append(time.perf_counter() - start - steps / clock.rate())
        return clock.rate()

    rates = alternate({"plain": timed_rate(lambda: plain.train(steps), steps), "Estimator.train()": ours}, repeats)
    estimator.close()
    plain.session.close()
    return rates, overheads


def evaluation_times(images, labels, repeats: int, model_dir: str):
    """Seconds of a new Estimator's first ``evaluate`` (build + restore + the pass) and of its later ones."""
    _, eval_fn, _ = input_fns(images, labels, 32)
    firsts, laters = [], []
    for _ in range(repeats):
        estimator = new_estimator(model_dir)
        for call in range(4):
            start = time.perf_counter()
            estimator.evaluate(eval_fn)
            (firsts if call == 0 else laters).append(time.perf_counter() - start)
        estimator.close()
    return firsts, laters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(mnist_dir()), help="default: $ELISTIMATOR_MNIST_DIR or data/mnist")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--eval-size", type=int, default=1000)
    args = parser.parse_args()
    images, labels = load_mnist(args.data_dir)["test"]
    with tempfile.TemporaryDirectory() as work:
        rates, overheads = training_rows(images, labels, args.steps, args.repeats, work)
        eval_images, eval_labels = images[: args.eval_size], labels[: args.eval_size]
        firsts, laters = evaluation_times(eval_images, eval_labels, max(3, args.repeats // 2), work)
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {args.repeats} alternating repeats")
    print("| 2-layer MLP b32, MNIST | median | best |")
    print("| --- | ---: | ---: |")
    for name, values in rates.items():
        print(f"| {name}, steps/s | {statistics.median(values):,.1f} | {max(values):,.1f} |")
    ratio = statistics.median(rates["Estimator.train()"]) / statistics.median(rates["plain"])
    best = max(rates["Estimator.train()"]) / max(rates["plain"])
    print(f"| ratio of medians (of bests) | {ratio:.3f} | {best:.3f} |")
    print(
        f"| Estimator.train() overhead per call ({len(images):,} training images), s | "
        f"{statistics.median(overheads):.2f} | {min(overheads):.2f} |"
    )
    print(
        f"| first evaluate() of a new Estimator (build + restore + {args.eval_size:,} examples), s | "
        f"{statistics.median(firsts):.3f} | {min(firsts):.3f} |"
    )
    print(f"| 2nd-4th evaluate() calls, s | {statistics.median(laters):.3f} | {min(laters):.3f} |")


if __name__ == "__main__":
    main()
