"""How fast a backlog reaches a real ``mlflow server`` once it answers again, and how soon delivery
resumes after an outage.

1. **Drain rate.** A journal of ``--points`` training-loss points, ``--validations`` validations and
   ``--checkpoints`` one-checkpoint model directories (the shapes a training journals) is written
   while nothing listens; then the server starts and ``sync`` delivers it: operations per second,
   median and best of ``--repeats``.
2. **Resumption.** A live tracker whose store went away backs off (up to 30 s between attempts); the
   server comes back: seconds from the server answering its health check to the first operation
   delivered, against the back-off it was in.

    python bench/delivery_drain.py --repeats 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(root / "tests"))

from mlflow_server import MlflowServer, free_port  # noqa: E402

from elistimator_tracking.errors import TrackingWarning  # noqa: E402
from elistimator_tracking.tracking.journal.sync import sync  # noqa: E402
from elistimator_tracking.tracking.mlflow_tracker import MlflowTracker  # noqa: E402
from elistimator_tracking.tracking.run import RunRecord  # noqa: E402


def one_checkpoint(destination: Path, step: int) -> dict[str, str]:
    folder = destination / "checkpoints"
    folder.mkdir(parents=True)
    files = {}
    for suffix, size in (("index", 400), ("meta", 60_000), ("data-00000-of-00001", 40_000)):
        name = f"model-{step}.{suffix}"
        (folder / name).write_bytes(os.urandom(size))
        files[name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    metadata = {
        "format": "elistimator/1",
        "graph": {},
        "global_step": step,
        "max_to_keep": 5,
        "saver_args": {},
        "checkpoints": {str(step): {"prefix": f"checkpoints/model-{step}", "files": files, "local": True}},
        "validations": {},
        "tracking": None,
    }
    (destination / "elistimator.json").write_text(json.dumps(metadata))
    return files


def backlog(model_dir: Path, uri: str, points: int, validations: int, checkpoints: int) -> int:
    """Journal a training's worth of work while ``uri`` does not answer; returns the operations journaled."""
    tracker = MlflowTracker(uri, start_timeout=0.5, close_timeout=0.5, max_backoff=0.5)
    run = RunRecord.new(tracker.tracking_uri, "drain")
    tracker.start(model_dir / "tracking", run, "drain", {"bench": "drain"})
    tracker.log_params({f"p{i}": str(i) for i in range(20)})
    every = max(1, points // max(1, validations))
    for step in range(1, points + 1):
        tracker.log_metrics({"train/loss": 1.0 / step}, step)
        if step % every == 0 and step // every <= validations:
            tracker.log_metrics({"validation/loss": 1.0 / step, "validation/accuracy": 1 - 1.0 / step}, step)
            if step // every <= checkpoints:
                outbox = tracker.outbox(f"model-step-{step}")
                outbox.rmdir()
                files = one_checkpoint(outbox, step)
                tracker.log_checkpoint_model(outbox, step, files)
    tracker.finish("FINISHED")
    return len(tracker._require_started().pending())


def drain(work: Path, args) -> float:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    model_dir = work / "model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrackingWarning)
        operations = backlog(model_dir, uri, args.points, args.validations, args.checkpoints)
    server = MlflowServer(work / "server", port=port).start()
    try:
        started = time.perf_counter()
        (report,) = sync(model_dir, timeout=600).values()
        elapsed = time.perf_counter() - started
        assert report.delivered, report
    finally:
        server.stop()
    return operations / elapsed


def resumption(work: Path, outage: float) -> tuple[float, float]:
    """Seconds from the server's return to the first delivery, and the back-off at that moment."""
    server = MlflowServer(work / "server-resume").start()
    tracker = MlflowTracker(server.uri, start_timeout=10, close_timeout=30, max_backoff=30)
    run = RunRecord.new(tracker.tracking_uri, "resume")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrackingWarning)
        tracker.start(work / "resume" / "tracking", run, "resume", {})
        tracker.flush(10)
        server.stop()
        down_at = time.monotonic()
        tracker.log_metrics({"train/loss": 0.5}, 1)
        time.sleep(outage)  # the worker backs off: 0.5, 1, 2, 4, 8, 16 s ...
        server.start()
        back = time.perf_counter()
        worker = tracker._worker
        while worker.progress.delivered < worker.last_queued():
            time.sleep(0.02)
        resumed = time.perf_counter() - back
        tracker.finish("FINISHED")
    server.stop()
    return resumed, time.monotonic() - down_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--validations", type=int, default=50)
    parser.add_argument("--checkpoints", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--outage", type=float, default=20.0)
    args = parser.parse_args()
    rates, resumed = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="bench-drain-") as work:
            rates.append(drain(Path(work), args))
            resumed.append(resumption(Path(work), args.outage))
    print("| backlog | operations/s median | best |")
    print("| --- | --- | --- |")
    print(
        f"| {args.points} training points, {args.validations} validations, {args.checkpoints} checkpoints "
        f"(140 KB each) | {statistics.median(rates):.1f} | {max(rates):.1f} |"
    )
    seconds = [r for r, _ in resumed]
    down = statistics.median(d for _, d in resumed)
    print(
        f"\nafter a {args.outage:g} s outage (the worker backing off; {down:.1f} s from the server stopping to the "
        f"last operation delivered), delivery resumed {statistics.median(seconds):.2f} s (median; best "
        f"{min(seconds):.2f} s) after the server answered"
    )
    print(f"({args.repeats} repeats; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())})")


if __name__ == "__main__":
    main()
