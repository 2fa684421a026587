"""What MLflow tracking costs an epoch of the seed MNIST model: off, SQLite store, mlflow server.

An epoch is ``train()`` over 8,000 real MNIST images (batch 56, 143 steps), ``validate()``
on 2,000 more and ``save_ckpt()`` (13 MB, uploaded as a run artifact when tracking).
Each mode trains a warm-up epoch first (graph build, run creation), then the timed
epochs; modes take turns (the order rotates every repeat) so drift hits them alike. The plain session
loop (a hand-written ``session.run(train_op)`` over the same data) is the reference.
``close()`` (which waits for the last uploads) is timed on its own. Epoch times vary
by several percent between runs on a 2-core machine, more than tracking costs, so the
table also gives the time the training thread itself spent in tracking calls (every
moment the MLflow run's listener handles, timed here) as a share of the epoch.

    python bench/tracking_overhead.py --epochs 3 --repeats 2
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import elistimator_tracking  # noqa: F401  (sets the TensorFlow environment first)
from elistimator_tracking import Elistimator
from elistimator_tracking.tracking.listener import TrackingListener

root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(root / "examples"))
sys.path.insert(0, str(root / "tests"))
sys.path.insert(0, str(root / "bench"))
from mlflow_server import MlflowServer  # noqa: E402
from mnist_cnn import PARAMS, cnn_model_fn, input_fns  # noqa: E402
from mnist_data import load_mnist, mnist_dir  # noqa: E402
from train_speed import PlainLoop  # noqa: E402

TRACKING_SECONDS = [0.0]


def timed(moment):
    def handle(self, *args):
        start = time.perf_counter()
        try:
            return moment(self, *args)
        finally:
            TRACKING_SECONDS[0] += time.perf_counter() - start

    return handle


def epoch_seconds(tracking, train_input_fn, validation_input_fn, epochs: int, workdir: Path):
    """Seconds per timed epoch, training-thread seconds in tracking calls per epoch, and ``close()`` seconds."""
    model_dir = Path(tempfile.mkdtemp(dir=workdir))
    times, in_tracking = [], []
    estimator = Elistimator(
        cnn_model_fn, model_dir, params=PARAMS, verbose=False, tracking=tracking, experiment="bench"
    )
    estimator.setup(train_input_fn, validation_input_fn)
    for epoch in range(epochs + 1):
        TRACKING_SECONDS[0] = 0.0
        start = time.perf_counter()
        estimator.train()
        estimator.validate()
        estimator.save_ckpt()
        if epoch:  # the first epoch is the warm-up
            times.append(time.perf_counter() - start)
            in_tracking.append(TRACKING_SECONDS[0])
    start = time.perf_counter()
    estimator.close()
    return times, in_tracking, time.perf_counter() - start


def plain_epoch_seconds(train_input_fn) -> float:
    """143 steps of the hand-written loop (after a warm-up), in seconds."""
    loop = PlainLoop(cnn_model_fn, train_input_fn, repeat=True)
    loop.train(5)
    start = time.perf_counter()
    loop.train(143)
    elapsed = time.perf_counter() - start
    loop.session.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(mnist_dir()), help="default: $ELISTIMATOR_MNIST_DIR or data/mnist")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    for name in [n for n in vars(TrackingListener) if n.startswith("on_")]:
        setattr(TrackingListener, name, timed(getattr(TrackingListener, name)))
    images, labels = load_mnist(args.data_dir)["test"]
    train_input_fn, validation_input_fn = input_fns(
        (images[:8000], labels[:8000]), (images[8000:], labels[8000:]), PARAMS["batch_size"]
    )
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as work:
        work = Path(work)
        server = MlflowServer(work / "server").start()
        modes = {"tracking off": False, "SQLite store": f"sqlite:///{work / 'mlflow.db'}", "mlflow server": server.uri}
        epochs = {mode: [] for mode in modes}
        closing = {mode: [] for mode in modes}
        in_tracking = {mode: [] for mode in modes}
        plain = []
        try:
            order = list(modes)
            for _ in range(args.repeats):
                plain.append(plain_epoch_seconds(train_input_fn))
                order = order[1:] + order[:1]  # rotate, so no mode always runs first or last
                for mode in order:
                    tracking = modes[mode]
                    times, tracked, close_time = epoch_seconds(
                        tracking, train_input_fn, validation_input_fn, args.epochs, work
                    )
                    epochs[mode] += times
                    in_tracking[mode] += [t / e for t, e in zip(tracked, times, strict=False)]
                    closing[mode].append(close_time)
        finally:
            server.stop()
    off = statistics.median(epochs["tracking off"])
    plain_epoch = statistics.median(plain)
    print(f"{'mode':<16}{'epoch s':>9}{'vs off':>9}{'vs plain':>10}{'in tracking calls':>19}{'close s':>9}")
    print(f"{'plain loop':<16}{plain_epoch:>9.2f}{'':>9}{1.0:>10.3f}{'':>19}{'':>9}   (training steps only)")
    for mode in modes:
        m = statistics.median(epochs[mode])
        share = f"{100 * statistics.median(in_tracking[mode]):.2f} %"
        print(
            f"{mode:<16}{m:>9.2f}{m / off:>9.3f}{m / plain_epoch:>10.3f}{share:>19}"
            f"{statistics.median(closing[mode]):>9.2f}"
        )
    print(
        f"(median of {args.repeats} x {args.epochs} epochs per mode; an epoch = train 143 steps + validate "
        f"2,000 images + save_ckpt; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())})"
    )


if __name__ == "__main__":
    main()
