"""What tracking costs a tiny training's epoch: off, a SQLite store, a team's server (PostgreSQL
backend, proxied artifacts: docs/deploy.md), in one process, the modes taking turns.

An epoch is ``train()`` over 2,000 examples of a linear classifier (batch 8, 250 steps),
``validate()`` on 500 more and ``save_ckpt()`` (a run artifact when tracking). Each mode first
trains a warm-up epoch (graph, run creation). The order of the modes rotates every repeat, so
drift on a busy machine hits them alike; medians and bests are printed with the ratio to off.
Needs PostgreSQL (``initdb``/``postgres``, see tests/mlflow_server.py ``postgres_bin``) and psycopg.

    python bench/team_server.py --epochs 3 --repeats 3
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import elistimator_tracking  # noqa: F401  (sets the TensorFlow environment first)
from elistimator_tracking import Elistimator, EvaluationSpec, PredictSpec, TrainSpec
from elistimator_tracking._tf import tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from mlflow_server import MlflowServer, PostgresServer, postgres_bin  # noqa: E402


def linear_model_fn(features, is_training, params):
    logits = tf.layers.dense(features["x"], 2, name="logits")
    loss = tf.losses.sparse_softmax_cross_entropy(labels=features["y"], logits=logits)
    train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=tf.train.get_global_step())
    classes = tf.argmax(logits, axis=1, output_type=tf.int32)
    return (
        TrainSpec(loss, train_op),
        EvaluationSpec(loss, {"accuracy": tf.metrics.accuracy(features["y"], classes)}),
        PredictSpec({"classes": classes}),
    )


def input_fn(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(np.int32)
    x = (rng.normal(size=(n, 2)) + np.where(y[:, None] == 1, 2.0, -2.0)).astype(np.float32)
    return lambda: tf.data.Dataset.from_tensor_slices({"x": x, "y": y}).batch(8)


def epoch_seconds(tracking, epochs: int, workdir: Path):
    """Seconds of each timed epoch (after a warm-up epoch)."""
    times = []
    with Elistimator(
        linear_model_fn, Path(tempfile.mkdtemp(dir=workdir)), verbose=False, tracking=tracking, experiment="bench-team"
    ) as estimator:
        estimator.setup(input_fn(2000, 0), input_fn(500, 1))
        for epoch in range(epochs + 1):
            start = time.perf_counter()
            estimator.train().validate()
            estimator.save_ckpt()
            if epoch:
                times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if postgres_bin() is None:
        sys.exit("PostgreSQL (initdb, postgres) not found: see tests/mlflow_server.py postgres_bin")
    with tempfile.TemporaryDirectory(prefix="bench-team-") as work:
        work = Path(work)
        postgres = PostgresServer(postgres_bin()).start()
        server = None
        try:
            server = MlflowServer(work / "server", backend=postgres.create_database("mlflow")).start()
            modes = {
                "tracking off": False,
                "SQLite store": f"sqlite:///{work / 'mlflow.db'}",
                "PostgreSQL server": server.uri,
            }
            seconds = {mode: [] for mode in modes}
            order = list(modes)
            for _ in range(args.repeats):
                for mode in order:
                    seconds[mode] += epoch_seconds(modes[mode], args.epochs, work)
                order = order[1:] + order[:1]
        finally:
            if server:
                server.stop()
            postgres.remove()
    off = statistics.median(seconds["tracking off"])
    print(f"{'mode':<20}{'median s':>10}{'best s':>9}{'median vs off':>15}")
    for mode, times in seconds.items():
        print(f"{mode:<20}{statistics.median(times):>10.3f}{min(times):>9.3f}{statistics.median(times) / off:>15.3f}")
    print(f"({args.repeats} x {args.epochs} epochs per mode; an epoch = train 250 steps + validate 500 + save_ckpt)")


if __name__ == "__main__":
    main()
