"""What lineage costs: the dataset digest, dataset logging at setup(), and system metrics.

Part 1 times ``datasets.describe`` (the digest of an input function's pipeline: its ops, the
arrays it captured, its files' sizes and times) for in-memory MNIST-shaped data of growing
size. Part 2 trains the seed MNIST CNN (8,000 real MNIST images, batch 56, 143 steps an
epoch; validation on 2,000) tracked to a SQLite store in three modes that take turns in one
process (the order rotates every repeat): datasets not logged (the listener's ``on_input``
switched off), datasets logged (the default), and datasets logged with
``system_metrics=True`` sampling every ``--interval`` seconds. It reports ``setup()`` (where
datasets are described and journaled), the first epoch and the later epochs (train +
validate), median and best.

    nice -n 10 python bench/lineage_cost.py --repeats 3
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import elistimator_tracking  # noqa: F401  (sets the TensorFlow environment first)
from elistimator_tracking import Elistimator
from elistimator_tracking._tf import tf
from elistimator_tracking.datasets import describe
from elistimator_tracking.inputs import InputSignature
from elistimator_tracking.tracking.listener import TrackingListener

root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(root / "examples"))
from mnist_cnn import PARAMS, cnn_model_fn, input_fns  # noqa: E402
from mnist_data import load_mnist, mnist_dir  # noqa: E402

ON_INPUT = TrackingListener.on_input


def digest_seconds(images: int, repeats: int = 5):
    """Seconds to build a dataset of ``images`` random 28x28 float32 images and labels in a graph
    (what the training stream pays anyway), and the median seconds of ``describe`` on it (what
    ``setup()`` adds when tracking)."""
    x = np.random.default_rng(0).random((images, 28, 28), dtype=np.float32)
    y = np.zeros(images, np.int32)
    with tf.Graph().as_default():
        start = time.perf_counter()
        dataset = tf.data.Dataset.from_tensor_slices({"images": x, "labels": y}).batch(56).shuffle(1000)
        built = time.perf_counter() - start
        signature = InputSignature.from_element_spec(dataset.element_spec, "training")
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            describe(dataset, signature, "mnist", "training")
            times.append(time.perf_counter() - start)
    return built, statistics.median(times)


def one_run(mode: str, store: str, train_fn, validation_fn, epochs: int, work: Path):
    """``setup()`` seconds and the seconds of each epoch (train + validate)."""
    TrackingListener.on_input = ON_INPUT if mode != "datasets off" else (lambda self, context, describe: None)
    estimator = Elistimator(
        cnn_model_fn,
        tempfile.mkdtemp(dir=work),
        params=PARAMS,
        verbose=False,
        tracking=store,
        experiment="bench-lineage",
        system_metrics=mode == "+ system metrics",
    )
    try:
        start = time.perf_counter()
        estimator.setup(train_fn, validation_fn)
        setup = time.perf_counter() - start
        times = []
        for _ in range(epochs):
            start = time.perf_counter()
            estimator.train()
            estimator.validate()
            times.append(time.perf_counter() - start)
    finally:
        estimator.close()
        TrackingListener.on_input = ON_INPUT
    return setup, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(mnist_dir()), help="default: $ELISTIMATOR_MNIST_DIR or data/mnist")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--interval", type=float, default=1.0, help="system metrics sampling interval (s)")
    args = parser.parse_args()
    os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] = str(args.interval)

    print("digest of an in-memory dataset (datasets.describe, median of 5) and, for scale, building it")
    print(f"{'images':>8}{'MB':>8}{'build s':>10}{'digest s':>10}")
    for images in (2_000, 10_000, 60_000):
        built, digest = digest_seconds(images)
        print(f"{images:>8,}{images * 28 * 28 * 4 / 1e6:>8.1f}{built:>10.3f}{digest:>10.3f}")

    images, labels = load_mnist(args.data_dir)["test"]
    train_fn, validation_fn = input_fns(
        (images[:8000], labels[:8000]), (images[8000:], labels[8000:]), PARAMS["batch_size"]
    )
    modes = ["datasets off", "datasets on", "+ system metrics"]
    setups = {m: [] for m in modes}
    firsts = {m: [] for m in modes}
    laters = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="bench-lineage-") as work:
        store = f"sqlite:///{Path(work) / 'mlflow.db'}"
        order = list(modes)
        for _ in range(args.repeats):
            for mode in order:
                setup, times = one_run(mode, store, train_fn, validation_fn, args.epochs, Path(work))
                setups[mode].append(setup)
                firsts[mode].append(times[0])
                laters[mode] += times[1:]
            order = order[1:] + order[:1]
    print(
        f"\nMNIST CNN, 8,000 images, tracked to SQLite; system metrics every {args.interval:g} s; "
        f"{args.repeats} runs x {args.epochs} epochs per mode (median / best, seconds)"
    )
    print(f"{'mode':<18}{'setup()':>16}{'first epoch':>16}{'later epochs':>16}")
    for mode in modes:
        cells = [f"{statistics.median(v):.2f} / {min(v):.2f}" for v in (setups[mode], firsts[mode], laters[mode])]
        print(f"{mode:<18}" + "".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()
