"""The input designs tried for the Elistimator, each a bare training loop, against the plain in-graph loop.

- plain: the dataset built into the model graph (what one writes by hand; it puts the data
  into the graph, which the Elistimator must not do);
- feed, synchronous: the previous design, a data session read batch by batch, each batch fed;
- (a) feed from a thread: a background thread runs the data session ahead into a bounded queue;
- (b) in-graph queue: a background thread feeds batches from the data session into a
  ``tf.FIFOQueue`` in the model graph, the step dequeues (the TF1 high-performance pattern);
- (c) serialized dataset: the input stage the Elistimator now uses (``streams.py``): the dataset
  serialized in its own graph, loaded into an in-graph iterator as a fed value.

Designs take turns (the order rotates every repeat); the table gives steps/s (median, best),
the ratio of medians to the plain loop, and the process CPU time per step (all threads): what
a design costs a shared machine beyond its wall time.

    python bench/input_designs.py --model mlp --steps 1000 --repeats 7
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import threading
import time

from plots import PLOT_HELP, captured
from train_speed import PARAMS, cnn_model_fn, input_fn, load_mnist, mlp_model_fn, mnist_dir

import elistimator_tracking  # noqa: F401  (sets the TensorFlow environment first)
from elistimator_tracking._tf import new_session, tf
from elistimator_tracking.inputs import InputData, keyed
from elistimator_tracking.streams import GraphInput, GraphStream, InputSlots

NO_GPU = tf.ConfigProto(device_count={"GPU": 0})


class Design:
    """A model graph whose features come from ``features()``, trained ``steps`` at a time."""

    def __init__(self, model_fn, dataset_fn):
        self.dataset_fn = dataset_fn
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.train.get_or_create_global_step()
            self.is_training = tf.placeholder_with_default(False, [])
            train, _, _ = model_fn(self.features(), self.is_training, PARAMS)
            self.fetches = [train.train_op, train.loss]
            init = tf.group(tf.global_variables_initializer(), tf.local_variables_initializer())
        self.session = new_session(self.graph)
        self.session.run(init)
        self.start()

    def features(self):
        raise NotImplementedError

    def start(self) -> None:
        pass

    def train(self, steps: int) -> None:
        for _ in range(steps):
            self.session.run(self.fetches, self.feed())

    def feed(self):
        return {self.is_training: True}

    def close(self) -> None:
        self.session.close()


class Plain(Design):
    def features(self):
        self.iterator = tf.data.make_initializable_iterator(self.dataset_fn().repeat())
        return self.iterator.get_next()

    def start(self) -> None:
        self.session.run(self.iterator.initializer)


class DataSession:
    """The dataset in a graph and session of its own, read one numpy batch at a time, epoch after epoch."""

    def __init__(self, dataset_fn):
        graph = tf.Graph()
        with graph.as_default():
            self.iterator = tf.data.make_initializable_iterator(dataset_fn())
            self.next = self.iterator.get_next()
        self.session = new_session(graph, config=NO_GPU)
        self.session.run(self.iterator.initializer)

    def batch(self):
        try:
            return keyed(self.session.run(self.next))
        except tf.errors.OutOfRangeError:
            self.session.run(self.iterator.initializer)
            return keyed(self.session.run(self.next))


class Fed(Design):
    def features(self):
        self.inputs = {"images": tf.placeholder(tf.float32, [None, 784]), "labels": tf.placeholder(tf.int32, [None])}
        return self.inputs

    def start(self) -> None:
        self.data = DataSession(self.dataset_fn)

    def next_batch(self):
        return self.data.batch()

    def feed(self):
        return {**{self.inputs[k]: v for k, v in self.next_batch().items()}, self.is_training: True}


class ThreadFed(Fed):
    def start(self) -> None:
        super().start()
        self.queue: queue.Queue = queue.Queue(maxsize=4)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.fill, daemon=True)
        self.thread.start()

    def fill(self) -> None:
        while not self.stopping.is_set():
            batch = self.data.batch()
            while not self.stopping.is_set():
                try:
                    self.queue.put(batch, timeout=0.1)
                    break
                except queue.Full:
                    pass

    def next_batch(self):
        return self.queue.get()

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        super().close()


class InGraphQueue(Design):
    def features(self):
        self.placeholders = (tf.placeholder(tf.float32, [None, 784]), tf.placeholder(tf.int32, [None]))
        fifo = tf.FIFOQueue(4, [tf.float32, tf.int32])
        self.enqueue = fifo.enqueue(self.placeholders)
        self.cancel = fifo.close(cancel_pending_enqueues=True)
        images, labels = fifo.dequeue()
        images.set_shape([None, 784])
        labels.set_shape([None])
        return {"images": images, "labels": labels}

    def start(self) -> None:
        self.data = DataSession(self.dataset_fn)
        self.thread = threading.Thread(target=self.fill, daemon=True)
        self.thread.start()

    def fill(self) -> None:
        try:
            while True:
                batch = self.data.batch()
                self.session.run(
                    self.enqueue, dict(zip(self.placeholders, (batch["images"], batch["labels"]), strict=False))
                )
        except (tf.errors.CancelledError, RuntimeError):
            pass  # the queue was closed, or the session

    def close(self) -> None:
        self.session.run(self.cancel)
        self.thread.join()
        super().close()


class Serialized(Design):
    def features(self):
        self.input_data = InputData(self.dataset_fn, "training")
        self.graph_input, _, features = GraphInput.build(self.graph, self.input_data.signature, self.is_training)
        return features

    def start(self) -> None:
        slots = InputSlots(self.graph_input, self.session)
        self.stream = GraphStream(
            slots, "training", self.input_data, self.input_data.serialized(self.input_data.signature)
        )
        self.stream.restart()

    def train(self, steps: int) -> None:
        feed = {self.is_training: True}
        for _ in range(steps):
            if self.stream.run(self.fetches, feed) is None:
                self.stream.restart()


DESIGNS = {
    "plain (data in the graph)": Plain,
    "feed, synchronous (before)": Fed,
    "(a) feed from a thread": ThreadFed,
    "(b) in-graph queue, thread": InGraphQueue,
    "(c) serialized dataset (now)": Serialized,
}


def measure(design: Design, steps: int) -> dict[str, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    design.train(steps)
    return {"rate": steps / (time.perf_counter() - wall), "cpu": (time.process_time() - cpu) / steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(mnist_dir()), help="default: $ELISTIMATOR_MNIST_DIR or data/mnist")
    parser.add_argument("--model", choices=("cnn", "mlp"), default="mlp")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--plot", metavar="FILE.png", help=PLOT_HELP)
    args = parser.parse_args()
    images, labels = load_mnist(args.data_dir)["test"]
    model_fn, batch = (cnn_model_fn, 56) if args.model == "cnn" else (mlp_model_fn, 32)
    dataset_fn = input_fn(images, labels, batch, shuffle=True)
    designs = {name: cls(model_fn, dataset_fn) for name, cls in DESIGNS.items()}
    for design in designs.values():
        design.train(20)  # warm-up
    results: dict[str, list[dict[str, float]]] = {name: [] for name in designs}
    order = list(designs)
    for _ in range(args.repeats):
        for name in order:
            results[name].append(measure(designs[name], args.steps))
        order = order[1:] + order[:1]
    for design in designs.values():
        design.close()
    plain = statistics.median(r["rate"] for r in results[next(iter(designs))])
    print(
        f"{args.model} batch {batch}, {args.repeats} x {args.steps} steps per design, rotating order; "
        f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    with captured(
        args.plot, (f"{args.model} batch {batch}: training steps/s by input design", ["steps/s median", "best"])
    ):
        print("| design | steps/s median | best | vs plain (medians) | CPU ms per step |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for name, runs in results.items():
            rates = [r["rate"] for r in runs]
            print(
                f"| {name} | {statistics.median(rates):,.1f} | {max(rates):,.1f} | "
                f"{statistics.median(rates) / plain:.3f} | {1000 * statistics.median(r['cpu'] for r in runs):.2f} |"
            )


if __name__ == "__main__":
    main()
