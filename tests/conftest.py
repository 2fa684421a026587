"""Shared test helpers: a tiny classifier, its data, and the MNIST images when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from elistimator_tracking import Elistimator, EvaluationSpec, PredictSpec, TrainSpec
from elistimator_tracking._tf import tf

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def blobs(n: int = 70, seed: int = 0):
    """Two separable 2-D clusters: features {'x': float32 (n, 2), 'y': int32 (n,)}."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n).astype(np.int32)
    x = rng.normal(size=(n, 2)).astype(np.float32) + np.where(y[:, None] == 1, 2.0, -2.0).astype(np.float32)
    return x, y


def dataset_fn(x, y, batch: int = 8, **extra):
    """An input function over numpy arrays (a fresh Dataset on every call)."""
    def input_fn():
        return tf.data.Dataset.from_tensor_slices({"x": x, "y": y, **extra}).batch(batch)
    return input_fn


def tiny_model_fn(features, is_training, params):
    """A linear classifier written the TF1 way (tf.layers, tf.losses, tf.metrics)."""
    logits = tf.layers.dense(features["x"], 2, name="logits")
    dropped = tf.layers.dropout(logits, rate=params.get("dropout", 0.0), training=is_training)
    classes = tf.argmax(dropped, axis=1, output_type=tf.int32)
    loss = tf.losses.sparse_softmax_cross_entropy(labels=features["y"], logits=logits)
    train_op = tf.train.GradientDescentOptimizer(params.get("learning_rate", 0.5)).minimize(
        loss, global_step=tf.train.get_global_step())
    metrics = {"accuracy": tf.metrics.accuracy(labels=features["y"], predictions=classes)}
    return (TrainSpec(loss=loss, train_op=train_op),
            EvaluationSpec(loss=loss, eval_metric_ops=metrics),
            PredictSpec(output={"classes": classes, "probabilities": tf.nn.softmax(logits)}))


@pytest.fixture(scope="session", autouse=True)
def tracking_store(tmp_path_factory):
    """Every test tracks to one SQLite store in a temporary directory (artifacts in its ./mlruns).

    The working directory moves there too, so MLflow's relative defaults never touch the
    repository. Tests that need their own store pass ``tracking=`` explicitly.
    """
    home = tmp_path_factory.mktemp("tracking")
    previous_cwd, previous_uri = os.getcwd(), os.environ.get("MLFLOW_TRACKING_URI")
    os.chdir(home)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
    yield os.environ["MLFLOW_TRACKING_URI"]
    os.chdir(previous_cwd)
    if previous_uri is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous_uri


@pytest.fixture
def data():
    return blobs(70, seed=0), blobs(30, seed=1)


@pytest.fixture
def estimator(tmp_path, data):
    """A set-up tiny Elistimator in tmp_path/model (8-example batches: 9 training steps an epoch)."""
    (x, y), (vx, vy) = data
    est = Elistimator(tiny_model_fn, model_dir=tmp_path / "model", params={"learning_rate": 0.5}, verbose=False)
    est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
    yield est
    est.close()


def mnist_dir() -> Path:
    """Directory with MNIST ``*-ubyte.gz`` files: ELISTIMATOR_MNIST_DIR, else ../shared/data/mnist."""
    return Path(os.environ.get("ELISTIMATOR_MNIST_DIR", SHARED_MNIST))


def load_mnist_test_set():
    """The 10,000 real MNIST test images (flattened float32) and labels, or skip when absent."""
    directory = mnist_dir()
    if not (directory / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST images not found in {directory}")
    import mnist
    mnist.temporary_dir = lambda: str(directory)
    images = mnist.test_images().reshape(-1, 28 * 28).astype(np.float32)
    labels = mnist.test_labels().astype(np.int32)
    return images, labels


def import_example(name: str):
    """Import a script from examples/ as its own folder sees it: ``'mnist_example'``, ``'german_numbers/parity'``."""
    import importlib
    import sys
    folder, _, module = name.rpartition("/")
    examples = str(Path(__file__).resolve().parents[1] / "examples" / folder)
    if examples not in sys.path:
        sys.path.insert(0, examples)
    return importlib.import_module(module)
