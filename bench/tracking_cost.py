"""What tracking costs training, and where it goes: the seed MNIST CNN, ``train()`` only (the
training loss logged every 10 steps), tracking on (a local SQLite store) against tracking off.

Each side is a fresh process (``--side on|off``); the sides take turns, ``--rounds`` times, so
the machine's load hits both alike. A side trains a warm-up of 20 steps, then ``--steps`` timed
steps, and reports steps/s. The tracking side also reports the split of its cost:

- the training thread's own seconds in tracking (every moment the MLflow run's listener
  handles, journal appends and fsyncs included) and how many appends and fsyncs it made;
- the delivery thread's CPU seconds (user + system, read from the kernel by thread id) and how
  many store calls (``log_batch``) it made: on 2 cores it competes with TensorFlow's threads.

    python bench/tracking_cost.py --rounds 5 --steps 600
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(root / "examples"))
from mnist_data import mnist_dir  # noqa: E402


def side(tracking: bool, steps: int, data_dir: str, workdir: Path) -> dict:
    import psutil
    from mlflow.tracking import MlflowClient
    from mnist_cnn import PARAMS, cnn_model_fn, input_fns
    from mnist_data import load_mnist

    import elistimator_tracking  # noqa: F401  (the TensorFlow environment first)
    from elistimator_tracking import Elistimator
    from elistimator_tracking.tracking.journal import spool as spool_module
    from elistimator_tracking.tracking.listener import TrackingListener

    counts = {"in_tracking": 0.0, "appends": 0, "fsyncs": 0, "store_calls": 0}
    for name in [n for n in vars(TrackingListener) if n.startswith("on_")]:
        setattr(TrackingListener, name, _timed(getattr(TrackingListener, name), counts))
    append, fsync, log_batch = spool_module.Spool.append, os.fsync, MlflowClient.log_batch

    def counted_append(self, op, durable=False):
        counts["appends"] += 1
        return append(self, op, durable)

    def counted_fsync(fd):
        if threading.current_thread() is threading.main_thread():
            counts["fsyncs"] += 1
        return fsync(fd)

    def counted_log_batch(self, *args, **kwargs):
        counts["store_calls"] += 1
        return log_batch(self, *args, **kwargs)

    spool_module.Spool.append, os.fsync, MlflowClient.log_batch = counted_append, counted_fsync, counted_log_batch
    images, labels = load_mnist(data_dir)["test"]
    train_input_fn, _ = input_fns((images[:8000], labels[:8000]), (images[8000:], labels[8000:]), PARAMS["batch_size"])
    store = f"sqlite:///{workdir / 'mlflow.db'}" if tracking else False
    estimator = Elistimator(
        cnn_model_fn, workdir / "model", params=PARAMS, verbose=False, tracking=store, experiment="bench"
    )
    estimator.setup(train_input_fn)
    estimator.train(20)  # warm-up: graph, session, the run's start
    counts.update(in_tracking=0.0, appends=0, fsyncs=0, store_calls=0)
    start = time.perf_counter()
    estimator.train(steps)
    elapsed = time.perf_counter() - start
    delivery_cpu = _thread_cpu(psutil.Process(), "elistimator-tracking")
    estimator.close()
    return {"steps_per_s": steps / elapsed, "seconds": elapsed, "delivery_cpu_s": delivery_cpu, **counts}


def _timed(moment, counts):
    def handle(self, *args):
        start = time.perf_counter()
        try:
            return moment(self, *args)
        finally:
            counts["in_tracking"] += time.perf_counter() - start

    return handle


def _thread_cpu(process, name: str) -> float | None:
    ids = {t.native_id for t in threading.enumerate() if t.name == name}
    for thread in process.threads():
        if thread.id in ids:
            return thread.user_time + thread.system_time
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(mnist_dir()), help="default: $ELISTIMATOR_MNIST_DIR or data/mnist")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--side", choices=("on", "off"))
    args = parser.parse_args()
    if args.side:
        with tempfile.TemporaryDirectory(prefix="bench-tracking-cost-") as work:
            print(json.dumps(side(args.side == "on", args.steps, args.data_dir, Path(work))))
        return
    results = {"on": [], "off": []}
    loads = []
    for round_ in range(args.rounds):
        for name in ("on", "off") if round_ % 2 else ("off", "on"):
            done = subprocess.run(
                [sys.executable, __file__, "--side", name, "--steps", str(args.steps), "--data-dir", args.data_dir],
                capture_output=True,
                text=True,
                check=True,
            )
            results[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            loads.append(os.getloadavg()[0])
    on = [r["steps_per_s"] for r in results["on"]]
    off = [r["steps_per_s"] for r in results["off"]]
    ratios = [a / b for a, b in zip(on, off, strict=True)]
    print(f"{'side':<14}{'median steps/s':>16}{'best':>8}")
    print(f"{'tracking off':<14}{statistics.median(off):>16.2f}{max(off):>8.2f}")
    print(f"{'tracking on':<14}{statistics.median(on):>16.2f}{max(on):>8.2f}")
    print(
        f"on / off: median {statistics.median(on) / statistics.median(off):.3f}, best {max(on) / max(off):.3f}, "
        f"per round {', '.join(f'{r:.3f}' for r in ratios)}"
    )
    tracked = results["on"]
    share = statistics.median(r["in_tracking"] / r["seconds"] for r in tracked)
    cpu = [r["delivery_cpu_s"] / r["seconds"] for r in tracked if r["delivery_cpu_s"] is not None]
    print(
        f"training thread in tracking: {100 * share:.2f} % of the time "
        f"({statistics.median(r['appends'] for r in tracked):.0f} journal appends, "
        f"{statistics.median(r['fsyncs'] for r in tracked):.0f} fsyncs per {args.steps} steps)"
    )
    if cpu:
        print(
            f"delivery thread CPU: {100 * statistics.median(cpu):.2f} % of one core "
            f"({statistics.median(r['store_calls'] for r in tracked):.0f} store calls per {args.steps} steps)"
        )
    print(
        f"({args.rounds} rounds, sides alternating, one process per side; load average "
        f"{min(loads):.2f}-{max(loads):.2f}; {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
