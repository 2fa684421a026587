"""What a logged model per checkpoint costs the tracker thread and the store.

For checkpoints of two sizes (a dense layer of ``--small`` and ``--large`` hidden units on 256
inputs), one exported checkpoint directory is sent to a SQLite store both ways, ``--repeats``
times, alternating: as run artifacts (``checkpoints/step-N/``, what every checkpoint also gets)
and as an MLflow 3 logged model (``logged_models.create_checkpoint_model``: create, package the
pyfunc with pinned requirements, upload, link the run's metrics at the step, finalize). Both run
on the tracker's worker thread in training, never on the training thread. Prints median and best
seconds, and the bytes each form takes in the store.

    python bench/logged_model_cost.py --repeats 5
"""

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
from elistimator_tracking.tracking.http_limits import quiet
from elistimator_tracking.tracking.logged_models import checkpoint_key, create_checkpoint_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from crash_worker import input_fn, model_fn  # noqa: E402  (the crash tests' dense model on 256 inputs)


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(root: Path, hidden: int, repeats: int) -> dict:
    store = f"sqlite:///{root / 'store.db'}"
    with Elistimator(
        model_fn, root / "model", params={"hidden": hidden}, verbose=False, tracking=store, experiment=f"cost-{hidden}"
    ) as est:
        est.setup(input_fn, input_fn)
        est.train(4).validate()
        est.save_ckpt()
        step = est.global_step
    run_id = metadata.read(ModelDirectory(root / "model")).tracking["run_id"]  # delivered by close()
    client = MlflowClient(store)
    export = root / "export"
    export.mkdir()
    est_dir = ModelDirectory(root / "model")
    files = metadata.read(est_dir).index.records[step].files
    # the model directory of just this checkpoint, as the listener exports it
    with Elistimator.from_disk(root / "model", tracking=False, verbose=False) as loaded:
        loaded._checkpoints.saved(step, loaded._metadata()).write(export / "model_dir")
    artifacts, models = [], []
    for i in range(repeats):
        started = time.perf_counter()
        client.log_artifacts(run_id, str(export / "model_dir"), f"bench/step-{i}")
        artifacts.append(time.perf_counter() - started)
        started = time.perf_counter()
        with quiet():
            model_id = create_checkpoint_model(
                client, run_id, step, export / "model_dir", checkpoint_key(f"bench{i}", step, files)
            )
        models.append(time.perf_counter() - started)
    artifact_root = Path(client.get_run(run_id).info.artifact_uri)
    one_model = Path(client.get_logged_model(model_id).artifact_location)
    return {
        "hidden": hidden,
        "checkpoint_bytes": size_of(export / "model_dir"),
        "artifacts": artifacts,
        "model": models,
        "artifact_bytes": size_of(artifact_root / "bench" / "step-0"),
        "model_bytes": size_of(one_model),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=8)
    parser.add_argument("--large", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        "| checkpoint | as run artifacts: median / best s | as logged model: median / best s "
        "| store bytes: artifacts / logged model |"
    )
    print("| --- | --- | --- | --- |")
    for hidden in (args.small, args.large):
        with tempfile.TemporaryDirectory() as work:
            os.chdir(work)  # the store's default artifact root is ./mlruns
            r = measure(Path(work), hidden, args.repeats)
        print(
            f"| {r['checkpoint_bytes'] / 1e6:.2f} MB (hidden {hidden}) "
            f"| {statistics.median(r['artifacts']):.3f} / {min(r['artifacts']):.3f} "
            f"| {statistics.median(r['model']):.3f} / {min(r['model']):.3f} "
            f"| {r['artifact_bytes']:,} / {r['model_bytes']:,} |",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
