"""What the parity programs share: data (MNIST from idx files, synthetic sets), a step clock, the report line.

The programs are shaped like well-known public tf.estimator programs; they differ between the real
tf.estimator and ours only in ``side.load()`` (the import line). Each prints one JSON line,
``RESULT {...}``: its metrics, the steps/s inside its longest ``train()`` call (a hook times the steps
after the first), the seconds of its first ``train()`` call and of the whole program.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples"))
import side  # noqa: E402
from mnist_data import TEST_FILES, has_test_set, mnist_dir  # noqa: E402

STARTED = time.perf_counter()
MNIST = mnist_dir()  # the one MNIST rule: $ELISTIMATOR_MNIST_DIR, else data/mnist in the clone


def load():
    """``(tf, tf_estimator)`` of this side: the program's import line."""
    return side.load()


def mnist(n: int | None = None):
    """MNIST test images (float32 in [0, 1], ``(n, 784)``) and labels (int32), from the idx files; a
    generated stand-in of the same shapes where the files are absent (a fresh clone)."""
    images_file, labels_file = (MNIST / name for name in TEST_FILES)
    if not has_test_set(MNIST):
        rng = np.random.RandomState(0)
        labels = rng.randint(0, 10, n or 10000).astype(np.int32)
        images = (rng.rand(len(labels), 784) * 0.2 + (labels[:, None] == np.arange(784) % 10) * 0.8).astype(np.float32)
        return images, labels
    with gzip.open(images_file) as handle:
        images = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 784).astype(np.float32) / 255.0
    with gzip.open(labels_file) as handle:
        labels = np.frombuffer(handle.read(), np.uint8, offset=8).astype(np.int32)
    return (images[:n], labels[:n]) if n else (images, labels)


def mnist_input_fns(tf, batch: int, eval_batch: int = 500):
    """The training (shuffled, endless) and evaluation input functions over ``{'image': ...}`` of the first
    8,000 and the last 2,000 MNIST images."""
    images, labels = mnist()

    def train_input_fn():
        return (
            tf.data.Dataset.from_tensor_slices(({"image": images[:8000]}, labels[:8000]))
            .shuffle(8000)
            .repeat()
            .batch(batch)
        )

    def eval_input_fn():
        return tf.data.Dataset.from_tensor_slices(({"image": images[8000:]}, labels[8000:])).batch(eval_batch)

    return train_input_fn, eval_input_fn


def iris_like(n: int = 150, seed: int = 0):
    """Three classes of four measurements (the shape of the iris data of the premade-estimator guide)."""
    rng = np.random.RandomState(seed)
    species = rng.randint(0, 3, n)
    centres = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]], np.float32)
    measures = centres[species] + rng.randn(n, 4).astype(np.float32) * 0.35
    names = ["SepalLength", "SepalWidth", "PetalLength", "PetalWidth"]
    return {name: measures[:, i] for i, name in enumerate(names)}, species.astype(np.int64)


def step_clock(tf):
    """A ``SessionRunHook`` timing each step of one ``train()`` call (``rate()``: steps/s after the first)."""

    class StepClock(tf.train.SessionRunHook):
        def begin(self):
            self.times = []

        def after_run(self, run_context, run_values):
            self.times.append(time.perf_counter())

        def rate(self):
            return (len(self.times) - 1) / (self.times[-1] - self.times[0]) if len(self.times) > 1 else float("nan")

    return StepClock()


class Timer:
    """Seconds of a block (``with Timer() as t: ...; t.seconds``)."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def report(program: str, metrics: dict, steps_per_sec: float, first_train: float, **extra) -> None:
    result = {
        "program": program,
        "side": side.name(),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "steps_per_sec": steps_per_sec,
        "first_train_seconds": first_train,
        "seconds": time.perf_counter() - STARTED,
        **extra,
    }
    print("RESULT " + json.dumps(result), flush=True)


def model_dir(name: str) -> str:
    """A fresh model directory under ``$PARITY_WORK`` (default: a temporary directory)."""
    import tempfile

    root = os.environ.get("PARITY_WORK") or tempfile.mkdtemp(prefix="parity-")
    path = os.path.join(root, f"{name}-{side.name()}-{os.getpid()}")
    os.makedirs(path)
    return path
