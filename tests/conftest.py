"""Shared test set-up: a sandbox for every cache and store, tiny models and their data, the
train/validate/save loop, MLflow read-backs, and MNIST idx files.

The sandbox comes first: HOME, the download cache, the tracking store and the config folders
of Keras and MLflow point into a temporary folder before anything imports TensorFlow, Keras or
MLflow, so the suite (and every subprocess it starts) writes nothing into the user's home.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def sandbox_environment(root: Path) -> dict:
    """The variables that keep every cache and store under ``root``."""
    home = root / "home"
    return {
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "KERAS_HOME": str(home / ".keras"),
        "ELISTIMATOR_CACHE_DIR": str(root / "cache"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


SANDBOX = Path(tempfile.mkdtemp(prefix="elistimator-tests-"))
(SANDBOX / "home").mkdir()
os.environ.update(sandbox_environment(SANDBOX))

import numpy as np  # noqa: E402  (after the sandbox: these imports read HOME)
import pytest  # noqa: E402

from elistimator_tracking import Elistimator, EvaluationSpec, PredictSpec, TrainSpec  # noqa: E402
from elistimator_tracking._tf import tf  # noqa: E402
from elistimator_tracking.tracking.pages import every_page  # noqa: E402

MNIST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
DIGITS_MNIST_SIZE = 8_500


def pytest_unconfigure(config):
    shutil.rmtree(SANDBOX, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def tracking_store():
    """Every test tracks to the sandbox's SQLite store (artifacts in its ./mlruns), from the sandbox.

    The working directory moves there, so MLflow's relative defaults never touch the
    repository. Tests that need their own store pass ``tracking=`` explicitly.
    """
    previous = os.getcwd()
    os.chdir(SANDBOX)
    yield os.environ["MLFLOW_TRACKING_URI"]
    os.chdir(previous)


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory):
    """One real ``mlflow server`` (SQLite backend, proxied artifacts) that the tests which leave it
    alone share, started at the first one that asks (6-8 s) and stopped by its PID at the end."""
    from mlflow_server import MlflowServer

    server = MlflowServer(tmp_path_factory.mktemp("shared-server")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL cluster of the module's own (a team server's backend, a sweep's shared storage);
    skipped, or failed when required, without PostgreSQL."""
    import pwd

    from mlflow_server import PostgresServer, postgres_bin

    bin_dir = postgres_bin()
    missing = (
        None
        if bin_dir
        else (
            "PostgreSQL's initdb and postgres were not found (/usr/lib/postgresql/<n>/bin, "
            "PATH or $ELISTIMATOR_POSTGRES_BIN)"
        )
    )
    if bin_dir and os.geteuid() == 0 and "postgres" not in {entry.pw_name for entry in pwd.getpwall()}:
        missing = "running as root, and there is no postgres user to run PostgreSQL as (it refuses root)"
    try:
        import psycopg  # noqa: F401  (MLflow's PostgreSQL driver)
    except ImportError:
        missing = missing or "the PostgreSQL driver psycopg is not installed (pip install -e '.[test]')"
    if missing:
        if os.environ.get("ELISTIMATOR_REQUIRE_POSTGRES") == "1":
            pytest.fail(missing + ", but ELISTIMATOR_REQUIRE_POSTGRES=1 requires them")
        pytest.skip(missing)
    server = PostgresServer(bin_dir).start()
    yield server
    server.remove()


# -- a tiny classifier --------------------------------------------------------------------


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
        loss, global_step=tf.train.get_global_step()
    )
    metrics = {"accuracy": tf.metrics.accuracy(labels=features["y"], predictions=classes)}
    return (
        TrainSpec(loss=loss, train_op=train_op),
        EvaluationSpec(loss=loss, eval_metric_ops=metrics),
        PredictSpec(output={"classes": classes, "probabilities": tf.nn.softmax(logits)}),
    )


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


def registered_tiny_model(model_dir: Path, data, name: str, rows: int) -> dict:
    """Train the tiny model an epoch in ``model_dir``, register its best checkpoint as ``name``
    (alias champion); return what it predicts for the first ``rows`` validation examples."""
    (x, y), (vx, vy) = data
    with Elistimator(tiny_model_fn, model_dir, verbose=False) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        train_epochs(est, 1)
        est.register_best(name)
        return est.predict(x=vx[:rows])


def train_epochs(est: Elistimator, epochs: int, save_first: bool = False, each=None) -> dict:
    """The loop every test writes: an epoch of training, then validate and save (or save, then
    validate), then ``each(global_step)`` if given. Returns ``{global_step: what validate() returned}``."""
    returned = {}
    for _ in range(epochs):
        est.train()
        if save_first:
            est.save_ckpt()
        returned[est.global_step] = est.validate()
        if not save_first:
            est.save_ckpt()
        if each is not None:
            each(est.global_step)
    return returned


# -- a model whose validation values follow a designed course ------------------------------


def target_model_fn(features, is_training, params):
    """One weight ``w`` (0 at first) learns the training data's target ``t``: gradient descent
    with rate 0.5 on ``(w - t)^2`` sets ``w = t`` in one step. Validated on ``t = 0``, the loss is
    ``w^2`` and the metric ``w`` is ``w``: training on chosen targets gives chosen values."""
    w = tf.get_variable("w", [], initializer=tf.zeros_initializer())
    loss = tf.reduce_mean(tf.square(w - features["t"]))
    train_op = tf.train.GradientDescentOptimizer(0.5).minimize(loss, global_step=tf.train.get_global_step())
    return (
        TrainSpec(loss, train_op),
        EvaluationSpec(loss, {"w": tf.metrics.mean(w + 0.0 * features["t"])}),
        PredictSpec({"w": w + 0.0 * features["t"]}),
    )


def targets(value: float, steps: int = 3):
    """Training data for ``target_model_fn``: ``steps`` batches of 4 with target ``value``."""
    t = np.full(4 * steps, value, np.float32)
    return lambda: tf.data.Dataset.from_tensor_slices({"t": t}).batch(4)


def zero_targets():
    return tf.data.Dataset.from_tensor_slices({"t": np.zeros(6, np.float32)}).batch(4)


def fit_targets(est: Elistimator, course) -> dict:
    """For each target: train an epoch on it, validate, save. Returns ``{step: validate() result}``."""
    returned = {}
    for value in course:
        est.setup(targets(value), zero_targets)
        est.train()
        returned[est.global_step] = est.validate()
        est.save_ckpt()
    return returned


def best_of(returned: dict, metric: str = "loss", mode: str = "min") -> int:
    """The step whose ``metric`` is best, from the values validate() returned (which must all differ,
    so no tie-break is involved)."""
    values = {step: metrics[metric] for step, metrics in returned.items()}
    assert len(set(values.values())) == len(values), f"the test needs distinct values: {values}"
    return (min if mode == "min" else max)(values, key=values.get)


# -- reading a run back ---------------------------------------------------------------------


def history(client, run_id: str, key: str):
    """``[(step, value), ...]`` of a metric, in logged order."""
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


def pending(reports) -> dict:
    """``{tracking_uri: operations still pending}`` of what ``sync`` answered, after checking that it
    lost nothing and quarantined nothing."""
    for report in reports.values():
        assert not report.lost and not report.quarantined, report
    return {uri: report.pending for uri, report in reports.items()}


def logged_models_of(client, run_id: str) -> list:
    """Every logged model of the run, page by page."""
    experiment_id = client.get_run(run_id).info.experiment_id
    return list(every_page(client.search_logged_models, [experiment_id], filter_string=f"source_run_id = '{run_id}'"))


def stored_steps(client, run_id: str):
    """The steps of the run's checkpoints in the store (its READY logged models), each once: a step
    stored twice fails here."""
    models = logged_models_of(client, run_id)
    steps = [int(m.tags["elistimator.step"]) for m in models if str(m.status) == "READY"]
    assert len(steps) == len(set(steps)), f"a checkpoint stored twice: {sorted(steps)}"
    return sorted(steps)


def stored_dir(client, run_id: str, step: int) -> Path:
    """Where a local store keeps the run's checkpoint at ``step``: its logged model's model directory,
    on the store's own disk (tests that tamper with the store change files there)."""
    (model,) = [
        m
        for m in logged_models_of(client, run_id)
        if m.tags["elistimator.step"] == str(step) and str(m.status) == "READY"
    ]
    location = model.artifact_location
    assert location.startswith(("/", "file:")), location
    return Path(location.removeprefix("file://")) / "artifacts" / "model_dir"


def stored_checkpoint(client, run_id: str, step: int, destination: Path) -> Path:
    """Download the run's checkpoint at ``step`` (its logged model's model directory) to ``destination``."""
    (model,) = [
        m
        for m in logged_models_of(client, run_id)
        if m.tags["elistimator.step"] == str(step) and str(m.status) == "READY"
    ]
    import mlflow  # not at the top: tests check that some runs never import it

    local = mlflow.artifacts.download_artifacts(
        artifact_uri=model.artifact_location, dst_path=str(destination), tracking_uri=client.tracking_uri
    )
    return Path(local) / "artifacts" / "model_dir"


def tree(root: Path) -> dict:
    """Every path under ``root`` with its size (directories: -1): what a folder holds."""
    if not root.exists():
        return {}
    return {p.relative_to(root): (p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")}


# -- MNIST ----------------------------------------------------------------------------------


def load_mnist_test_set():
    """The 10,000 real MNIST test images (flattened float32) and labels, or skip when absent.

    Skipping becomes a failure under ELISTIMATOR_REQUIRE_MNIST=1 (``.ci/run`` sets it when the
    images are there), so a broken path to them cannot hide behind a skip.
    """
    mnist_data = import_example("mnist_data")
    directory = mnist_data.mnist_dir()
    if not mnist_data.has_test_set(directory):
        message = f"real MNIST images not found in {directory} (set ELISTIMATOR_MNIST_DIR)"
        if os.environ.get("ELISTIMATOR_REQUIRE_MNIST") == "1":
            pytest.fail(message + ", but ELISTIMATOR_REQUIRE_MNIST=1 requires them")
        pytest.skip(message)
    return mnist_data.load_mnist(directory)["test"]


def write_idx(path: Path, array: np.ndarray) -> None:
    """``array`` (uint8) as a gzipped idx file, the format of the MNIST distribution."""
    import gzip
    import struct

    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


@pytest.fixture(scope="session")
def digits_mnist_dir(tmp_path_factory) -> Path:
    """MNIST-shaped idx files made from scikit-learn's 8x8 digits: a 28x28 test set of
    DIGITS_MNIST_SIZE images (each digit scaled 3x, shifted up to 2 pixels), for the MNIST code
    path without real MNIST. The examples train on the first 8,000 and validate on the rest."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(digits.images), size=DIGITS_MNIST_SIZE)
    shifts = rng.integers(0, 5, size=(DIGITS_MNIST_SIZE, 2))
    images = np.zeros((DIGITS_MNIST_SIZE, 28, 28), np.uint8)
    large = np.kron(digits.images, np.ones((3, 3))) * (255 / 16)
    for dy, dx in {tuple(shift) for shift in shifts}:
        rows = np.flatnonzero((shifts[:, 0] == dy) & (shifts[:, 1] == dx))
        images[rows, dy : dy + 24, dx : dx + 24] = large[picks[rows]]
    directory = tmp_path_factory.mktemp("digits-mnist")
    write_idx(directory / MNIST_FILES[0], images)
    write_idx(directory / MNIST_FILES[1], digits.target[picks].astype(np.uint8))
    return directory


def import_example(name: str):
    """Import a script from examples/ as its own folder sees it: ``'mnist_example'``, ``'german_numbers/parity'``."""
    import importlib
    import sys

    folder, _, module = name.rpartition("/")
    examples = str(Path(__file__).resolve().parents[1] / "examples" / folder)
    if examples not in sys.path:
        sys.path.insert(0, examples)
    return importlib.import_module(module)
