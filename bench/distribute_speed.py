"""Data-parallel training on this machine's 2 CPU cores: steps/s of one device against 2 replicas
(``MirroredStrategy(devices=['/cpu:0', '/cpu:1'])``), and the Elistimator's per-step overhead with 2
replicas against a hand-written ``strategy.run`` loop over the same model.

- ``1 device``: ``Elistimator(model_fn).train(steps)``, global batch B;
- ``2 replicas``: ``Elistimator(model_fn, distribute=strategy).train(steps)``, the same global batch B
  split in two;
- ``hand-written``: ``strategy.make_dataset_iterator(dataset)`` over the same batches (repeated),
  ``strategy.run(model step)`` with tf.estimator's loss scaling, the loss reduced with
  ``strategy.reduce(MEAN)``, and ``session.run([train_op, loss])`` in a loop;
- ``hand-written, sliced in step``: the same, but one iterator of global batches that the step
  slices in two (how the Elistimator splits a batch).

The point on 2 shared cores is correctness and overhead, not speed-up: both replicas compete for
the same two cores as tf.data and the all-reduce. Sides are timed in short alternating blocks
(order flipped every repeat); the table gives median and best blocks and the ratios of medians.

    python bench/distribute_speed.py --repeats 15 --steps 100
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import numpy as np

import elistimator_tracking  # noqa: F401  (sets the TensorFlow environment first)
from elistimator_tracking import Elistimator, EvaluationSpec, PredictSpec, TrainSpec
from elistimator_tracking._tf import new_session, tf, tf2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plots import PLOT_HELP, captured  # noqa: E402
from train_speed import alternate, timed_rate  # noqa: E402

TWO_CPUS = tf.ConfigProto(device_count={"CPU": 2})


def model_fn(features, is_training, params):
    """A 2-layer MLP (784-256-10)."""
    hidden = tf.layers.dense(features["images"], params["hidden"], activation=tf.nn.relu)
    logits = tf.layers.dense(hidden, 10)
    loss = tf.losses.sparse_softmax_cross_entropy(features["labels"], logits)
    train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=tf.train.get_global_step())
    return TrainSpec(loss, train_op), EvaluationSpec(loss), PredictSpec({"logits": logits})


def data(n: int = 4096):
    rng = np.random.default_rng(0)
    return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n).astype(np.int32)


def dataset(images, labels, batch: int):
    return tf.data.Dataset.from_tensor_slices({"images": images, "labels": labels}).batch(batch, drop_remainder=True)


def estimator(images, labels, batch: int, hidden: int, strategy=None) -> Elistimator:
    est = Elistimator(
        model_fn,
        params={"hidden": hidden},
        verbose=False,
        tracking=False,
        distribute=strategy,
        session_args={"config": TWO_CPUS},
    )
    return est.setup(lambda: dataset(images, labels, batch))


class HandWritten:
    """The same model and batches through ``strategy.run`` in a bare session loop."""

    def __init__(self, strategy, images, labels, batch: int, hidden: int, slice_in_step: bool = False):
        """``slice_in_step``: one iterator of global batches, each sliced in the step (as the Elistimator
        does), instead of ``make_dataset_iterator``'s per-replica batches made by tf.data."""
        self.graph = tf.Graph()
        with self.graph.as_default(), strategy.scope():
            tf.train.get_or_create_global_step()
            if slice_in_step:
                iterator = tf.data.make_initializable_iterator(dataset(images, labels, batch).repeat())
                batch_tensors = iterator.get_next()
                half = batch // 2
                parts = [
                    {k: v[:half] for k, v in batch_tensors.items()},
                    {k: v[half:] for k, v in batch_tensors.items()},
                ]
                inputs = strategy.experimental_distribute_values_from_function(
                    lambda context: {k: tf.identity(v) for k, v in parts[context.replica_id_in_sync_group].items()}
                )
            else:
                iterator = strategy.make_dataset_iterator(dataset(images, labels, batch).repeat())
                inputs = iterator.get_next()

            def step(features):
                train, _, _ = model_fn(features, tf.constant(True), {"hidden": hidden})
                return train.loss, train.train_op

            with strategy._scale_loss_for_estimator_enabled():
                loss, train_op = strategy.run(step, args=(inputs,))
            self.fetches = [
                tf.group(*strategy.experimental_local_results(train_op)),
                strategy.reduce(tf2.distribute.ReduceOp.MEAN, loss, axis=None),
            ]
            init = [tf.global_variables_initializer(), iterator.initializer]
        self.session = new_session(self.graph, config=strategy.update_config_proto(TWO_CPUS))
        self.session.run(init)

    def train(self, steps: int) -> None:
        for _ in range(steps):
            self.session.run(self.fetches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--plot", metavar="FILE.png", help=PLOT_HELP)
    args = parser.parse_args()
    images, labels = data()
    strategy = tf2.distribute.MirroredStrategy(devices=["/cpu:0", "/cpu:1"])
    one = estimator(images, labels, args.batch, args.hidden)
    two = estimator(images, labels, args.batch, args.hidden, strategy)
    bare = HandWritten(strategy, images, labels, args.batch, args.hidden)
    sliced = HandWritten(strategy, images, labels, args.batch, args.hidden, slice_in_step=True)
    sides = {
        "1 device (Elistimator)": lambda: one.train(args.steps),
        "2 replicas (Elistimator)": lambda: two.train(args.steps),
        "2 replicas (hand-written strategy.run)": lambda: bare.train(args.steps),
        "2 replicas (hand-written, sliced in step)": lambda: sliced.train(args.steps),
    }
    for work in sides.values():
        work()  # warm up
    results = alternate({name: timed_rate(work, args.steps) for name, work in sides.items()}, args.repeats)
    print(
        f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {args.repeats} alternating repeats "
        f"of {args.steps} steps; MLP 784-{args.hidden}-10, global batch {args.batch}"
    )
    medians = {name: statistics.median(rates) for name, rates in results.items()}
    with captured(args.plot, ("steps/s: one device against two replicas", None)):
        print(f"| {'side':<40} | steps/s median | steps/s best |")
        print(f"| {'-' * 40} | ---: | ---: |")
        for name, rates in results.items():
            print(f"| {name:<40} | {medians[name]:.1f} | {max(rates):.1f} |")
    names = list(results)
    print(f"\n2 replicas / 1 device (medians): {medians[names[1]] / medians[names[0]]:.2f}x")
    print(
        f"Elistimator / hand-written, 2 replicas (medians): {medians[names[1]] / medians[names[2]]:.2f}x "
        f"(bests: {max(results[names[1]]) / max(results[names[2]]):.2f}x)"
    )
    for closing in (one, two):
        closing.close()


if __name__ == "__main__":
    main()
