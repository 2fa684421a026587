"""Elistimator.train(), validate() and one-off predict() next to hand-written TensorFlow, same process.

- training, steps/s: ``train(steps)`` against a plain loop, ``session.run([train_op, loss])`` over an
  in-graph ``tf.data`` iterator (``.repeat()``), for the seed MNIST CNN (batch 56) and a 2-layer
  MLP (batch 32, where per-step overhead dominates);
- validation, examples/s: ``validate()`` against a plain in-graph evaluation loop (loss and
  ``tf.metrics`` update ops until the iterator runs out, metrics and iterator reset per pass);
- one-off prediction of one image, ms: ``predict(images=x)`` against a bare
  ``session.run(outputs, {features: x})`` on the same graph and session.

Both sides are built once, warmed up, then timed in many short alternating blocks (the order
flips every repeat), so that the shared machine's load swings hit both alike; the table gives
each side's median and best block and the ratio of medians (and of bests). The machine's load
average is printed with the table.

    python bench/train_speed.py --repeats 21
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import elistimator_tracking  # noqa: F401  (sets the TensorFlow environment first)
from elistimator_tracking import Elistimator, EvaluationSpec, PredictSpec, TrainSpec
from elistimator_tracking._tf import new_session, tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from mnist_cnn import PARAMS, cnn_model_fn  # noqa: E402
from mnist_data import load_mnist, mnist_dir  # noqa: E402
from plots import PLOT_HELP, captured  # noqa: E402


def mlp_model_fn(features, is_training, params):
    """A 2-layer MLP (784-128-10): little compute per step, so per-step overhead shows."""
    hidden = tf.layers.dense(features["images"], 128, activation=tf.nn.relu)
    logits = tf.layers.dense(hidden, 10)
    loss = tf.losses.sparse_softmax_cross_entropy(features["labels"], logits)
    train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=tf.train.get_global_step())
    classes = tf.argmax(logits, 1, output_type=tf.int32)
    metrics = {"accuracy": tf.metrics.accuracy(features["labels"], classes)}
    return (
        TrainSpec(loss, train_op),
        EvaluationSpec(loss, metrics),
        PredictSpec({"classes": classes, "probabilities": tf.nn.softmax(logits)}),
    )


def input_fn(images, labels, batch: int, shuffle: bool):
    """The seed's input functions: batch, prefetch, shuffle (training)."""

    def make():
        dataset = tf.data.Dataset.from_tensor_slices({"images": images, "labels": labels}).batch(batch).prefetch(batch)
        return dataset.shuffle(1000) if shuffle else dataset

    return make


class PlainLoop:
    """What one writes by hand: the dataset in the model graph, ``session.run`` per step."""

    def __init__(self, model_fn, dataset_fn, repeat: bool):
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.train.get_or_create_global_step()
            dataset = dataset_fn()
            self.iterator = tf.data.make_initializable_iterator(dataset.repeat() if repeat else dataset)
            self.is_training = tf.placeholder_with_default(False, [])
            train, evaluation, _ = model_fn(self.iterator.get_next(), self.is_training, PARAMS)
            self.train_fetches = [train.train_op, train.loss]
            self.eval_fetches = [evaluation.loss, [u for _, u in evaluation.metric_ops.values()]]
            self.metrics = {k: v for k, (v, _) in evaluation.metric_ops.items()}
            self.reset = tf.local_variables_initializer()
            init = tf.group(tf.global_variables_initializer(), self.reset)
        self.session = new_session(self.graph)
        self.session.run([init, self.iterator.initializer])

    def train(self, steps: int) -> None:
        for _ in range(steps):
            self.session.run(self.train_fetches, {self.is_training: True})

    def validate(self) -> dict[str, float]:
        self.session.run([self.reset, self.iterator.initializer])
        losses = []
        try:
            while True:
                losses.append(self.session.run(self.eval_fetches)[0])
        except tf.errors.OutOfRangeError:
            pass
        return {**self.session.run(self.metrics), "loss": float(np.mean(losses))}


def alternate(sides: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Each side's measurements, taken in turns (the order flips every repeat)."""
    results = {name: [] for name in sides}
    order = list(sides)
    for _ in range(repeats):
        for name in order:
            results[name].append(sides[name]())
        order.reverse()
    return results


def timed_rate(work: Callable[[], None], units: int) -> Callable[[], float]:
    def measure() -> float:
        start = time.perf_counter()
        work()
        return units / (time.perf_counter() - start)

    return measure


def training_rows(model_fn, name: str, batch: int, steps: int, images, labels, repeats: int) -> list[tuple]:
    train_fn, eval_fn = input_fn(images, labels, batch, True), input_fn(images, labels, batch, False)
    plain, plain_eval = PlainLoop(model_fn, train_fn, True), PlainLoop(model_fn, eval_fn, False)
    estimator = Elistimator(model_fn, params=PARAMS, verbose=False, tracking=False).setup(train_fn, eval_fn)
    plain.train(20), estimator.train(20), plain_eval.validate(), estimator.validate()  # warm-up
    train = alternate(
        {
            "plain": timed_rate(lambda: plain.train(steps), steps),
            "train()": timed_rate(lambda: estimator.train(steps), steps),
        },
        repeats,
    )
    validation = alternate(
        {
            "plain": timed_rate(plain_eval.validate, len(images)),
            "validate()": timed_rate(estimator.validate, len(images)),
        },
        repeats,
    )
    rows = [
        (f"{name} b{batch}", "train steps/s", train["plain"], train["train()"]),
        (f"{name} b{batch}", "validate examples/s", validation["plain"], validation["validate()"]),
    ]
    if model_fn is cnn_model_fn:
        rows.append(prediction_row(estimator, images[:1], repeats))
    estimator.close()
    plain.session.close()
    plain_eval.session.close()
    return rows


def prediction_row(estimator: Elistimator, image: np.ndarray, repeats: int, calls: int = 100) -> tuple:
    """Per-call latency in ms (lower is better; reported as calls/s so every ratio reads 'higher is better')."""
    outputs = estimator._loops.model.predict.output
    images = estimator.graph.get_tensor_by_name(estimator._loops.model.signature["images"].tensor)

    def bare() -> None:
        for _ in range(calls):
            estimator.session.run(outputs, {images: image})

    def ours() -> None:
        for _ in range(calls):
            estimator.predict(images=image)

    bare(), ours()
    result = alternate({"bare": timed_rate(bare, calls), "predict": timed_rate(ours, calls)}, repeats)
    return ("seed CNN", "one-off predict calls/s", result["bare"], result["predict"])


def print_table(rows: list[tuple], repeats: int) -> None:
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {repeats} alternating repeats")
    print(
        "| model | measure | hand-written median | best | Elistimator median | best | ratio of medians | "
        "ratio of bests |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for model, measure, plain, ours in rows:
        pm, pb, om, ob = statistics.median(plain), max(plain), statistics.median(ours), max(ours)
        print(
            f"| {model} | {measure} | {pm:,.1f} | {pb:,.1f} | {om:,.1f} | {ob:,.1f} | {om / pm:.3f} | {ob / pb:.3f} |"
        )
    for _model, measure, plain, ours in rows:
        if measure.startswith("one-off"):
            print(
                f"one-off predict latency: bare session.run {1000 / statistics.median(plain):.3f} ms, "
                f"predict() {1000 / statistics.median(ours):.3f} ms (medians)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(mnist_dir()), help="default: $ELISTIMATOR_MNIST_DIR or data/mnist")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--cnn-steps", type=int, default=30)
    parser.add_argument("--mlp-steps", type=int, default=500)
    parser.add_argument("--plot", metavar="FILE.png", help=PLOT_HELP)
    args = parser.parse_args()
    images, labels = load_mnist(args.data_dir)["test"]
    rows = training_rows(cnn_model_fn, "seed CNN", 56, args.cnn_steps, images, labels, args.repeats)
    rows += training_rows(mlp_model_fn, "2-layer MLP", 32, args.mlp_steps, images, labels, args.repeats)
    with captured(
        args.plot, ("Elistimator / hand-written loop: above 1 is faster", ["ratio of medians", "ratio of bests"])
    ):
        print_table(rows, args.repeats)


if __name__ == "__main__":
    main()
