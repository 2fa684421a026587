"""What each checkpoint costs the tracking thread and the store: one copy (a logged model packaged
from a skeleton made once per run) against release 0.1's two (``mlflow.pyfunc.save_model`` per
checkpoint for its logged model, and the checkpoint again as the run artifact ``checkpoints/step-N``).

For two checkpoints, the crash tests' dense model on 256 inputs (``--hidden`` units) and the seed
MNIST CNN (13 MB), one exported one-checkpoint model directory is sent to a local SQLite store both
ways, ``--repeats`` times, alternating. Both run on the tracking thread in training, never on the
training thread. Prints median and best seconds per checkpoint and the store's bytes per
checkpoint against the model directory's.

    python bench/logged_model_cost.py --repeats 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mlflow import MlflowClient

import elistimator_tracking  # noqa: F401  (sets the TensorFlow environment first)
from elistimator_tracking import Elistimator, metadata
from elistimator_tracking.model_dir import ModelDirectory
from elistimator_tracking.tracking import logged_models
from elistimator_tracking.tracking.http_limits import quiet
from elistimator_tracking.tracking.names import legacy_checkpoint_path

root = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(root / "tests"), str(root / "examples")]
from crash_worker import input_fn, model_fn  # noqa: E402  (the crash tests' dense model on 256 inputs)
from mnist_cnn import PARAMS, cnn_model_fn  # noqa: E402


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def one_checkpoint(work: Path, which: str, hidden: int) -> tuple[Path, str, int, dict]:
    """A trained checkpoint exported as a one-checkpoint model directory, and its run in the store."""
    store = f"sqlite:///{work / 'store.db'}"
    if which == "dense":
        fn, params, data = model_fn, {"hidden": hidden}, input_fn
    else:
        import numpy as np
        import tensorflow.compat.v1 as tf

        images = np.zeros((56, 784), np.float32)
        labels = np.zeros(56, np.int32)
        fn, params = cnn_model_fn, PARAMS

        def data():
            return tf.data.Dataset.from_tensor_slices({"images": images, "labels": labels}).batch(56)

    with Elistimator(fn, work / "model", params=params, verbose=False, tracking=store, experiment=which) as est:
        est.setup(data, data)
        est.train(2).validate()
        est.save_ckpt()
        step = est.global_step
    run_id = metadata.read(ModelDirectory(work / "model")).tracking.run_id
    files = metadata.read(ModelDirectory(work / "model")).index.records[step].files
    with Elistimator.from_disk(work / "model", tracking=False, verbose=False) as loaded:
        loaded._checkpoints.saved(step, loaded._metadata()).write(work / "export" / "model_dir")
    return work / "export" / "model_dir", store, step, {"run_id": run_id, "files": files}


def two_copies(client, run_id: str, step: int, model_dir: Path, key: str) -> float:
    """Release 0.1: the logged model packaged by mlflow.pyfunc.save_model, and the run artifact."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        logged_models._save_model(model_dir, Path(work) / "model", False, None)
        run = client.get_run(run_id)
        model = client.create_logged_model(run.info.experiment_id, name=f"step-{step}", source_run_id=run_id)
        client.log_model_artifacts(model.model_id, str(Path(work) / "model"))
        client.finalize_logged_model(model.model_id, "READY")
    client.log_artifacts(run_id, str(model_dir), f"{legacy_checkpoint_path(step)}-{key}")
    return time.perf_counter() - started


def measure(which: str, hidden: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-checkpoint-cost-") as work:
        os.chdir(work)  # the store's default artifact root is ./mlruns
        work = Path(work)
        model_dir, store, step, made = one_checkpoint(work, which, hidden)
        client, packager = MlflowClient(store), logged_models.Packager()
        one, two = [], []
        with quiet():
            for i in range(repeats):
                started = time.perf_counter()
                model_id = logged_models.create(
                    client,
                    made["run_id"],
                    step,
                    model_dir,
                    logged_models.checkpoint_key(f"one{i}", step, made["files"]),
                    packager,
                )
                one.append(time.perf_counter() - started)
                two.append(two_copies(client, made["run_id"], step, model_dir, f"two{i}"))
        stored = size_of(Path(client.get_logged_model(model_id).artifact_location.removeprefix("file://")))
        artifact = size_of(
            Path(client.get_run(made["run_id"]).info.artifact_uri.removeprefix("file://"))
            / f"{legacy_checkpoint_path(step)}-two0"
        )
        return {
            "which": which,
            "model_dir": size_of(model_dir),
            "one": one,
            "two": two,
            "one_bytes": stored,
            "two_bytes": stored + artifact,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(
        "| checkpoint | model dir bytes | two copies (0.1): s median / best, store bytes / model dir "
        "| one copy: s median / best, store bytes / model dir |"
    )
    print("| --- | --- | --- | --- |")
    for which in ("dense", "cnn"):
        r = measure(which, args.hidden, args.repeats)
        print(
            f"| {which} | {r['model_dir']:,} | {statistics.median(r['two']):.3f} / {min(r['two']):.3f}, "
            f"{r['two_bytes'] / r['model_dir']:.2f} | {statistics.median(r['one']):.3f} / {min(r['one']):.3f}, "
            f"{r['one_bytes'] / r['model_dir']:.2f} |",
            flush=True,
        )
    print(
        f"({args.repeats} checkpoints each way, alternating; load average "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())})"
    )


if __name__ == "__main__":
    sys.exit(main())
