"""Start-up in fresh processes: ``elistimator --help``, ``import elistimator_tracking``, and
``Elistimator.from_disk('models:/...@alias')`` + the first ``predict`` with a warm download cache.

The load is broken down: TensorFlow's import, MLflow's (``mlflow`` and the store modules it
imports for the URI's scheme), and the rest, the package's own share (its modules,
resolving the alias in the store, verifying and importing the checkpoint, the first
prediction). Without ``--source`` the seed MNIST CNN is trained briefly, saved (13 MB)
and registered as ``mnist-cnn@champion`` in a temporary SQLite store. With
``--compare-with DIR`` every measurement alternates between the package in DIR (e.g. an
older checkout) and this one, each in its own process.

    python bench/startup.py --repeats 7 --compare-with /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from mnist_data import mnist_dir  # noqa: E402
from plots import PLOT_HELP, captured  # noqa: E402

LOAD = r"""
import importlib, json, os, sys, time
start = time.perf_counter()
os.environ.update(TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")  # the package's defaults, without importing it
import tensorflow
tensorflow_done = time.perf_counter()
import mlflow
scheme = "rest_store" if sys.argv[3].startswith("http") else "sqlalchemy_store"
for kind in ("tracking", "model_registry"):
    importlib.import_module(f"mlflow.store.{kind}.{scheme}")
mlflow_done = time.perf_counter()
import numpy as np
from elistimator_tracking import Elistimator
imported = time.perf_counter()
estimator = Elistimator.from_disk(sys.argv[1], cache_dir=sys.argv[2], verbose=False)
loaded = time.perf_counter()
estimator.predict(images=np.zeros((1, 784), np.float32))
done = time.perf_counter()
print(json.dumps({"total": done - start, "tensorflow": tensorflow_done - start, "mlflow": mlflow_done - tensorflow_done,
                  "package": done - mlflow_done, "modules": imported - mlflow_done, "from_disk": loaded - imported,
                  "predict": done - loaded}))
"""

PREPARE = r"""
import sys
sys.path.insert(0, sys.argv[2])
from elistimator_tracking import Elistimator
from mnist_cnn import PARAMS, cnn_model_fn, input_fns
from mnist_data import load_mnist
images, labels = load_mnist(sys.argv[1])["test"]
train_fn, validation_fn = input_fns((images[:2000], labels[:2000]), (images[2000:2560], labels[2000:2560]), 56)
with Elistimator(cnn_model_fn, "model", params=PARAMS, verbose=False, experiment="startup-bench") as estimator:
    estimator.setup(train_fn, validation_fn)
    estimator.train(20).validate()
    estimator.save_ckpt()
    estimator.register_best("mnist-cnn", alias="champion")
"""


def run(args: list[str], package: Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, cwd=cwd, env={**env, "PYTHONPATH": str(package)})
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed: {done.stderr[-2000:]}")
    return done


def wall(args: list[str], package: Path, cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    run(args, package, cwd, env)
    return time.perf_counter() - start


def command() -> list[str]:
    script = Path(sys.executable).parent / "elistimator"
    return [str(script)] if script.exists() else [sys.executable, "-m", "elistimator_tracking.cli"]


def measure(packages: dict[str, Path], source: str, work: Path, env: dict[str, str], repeats: int) -> dict:
    results: dict[str, dict[str, list]] = {name: {"help": [], "import": [], "load": []} for name in packages}
    caches = {name: work / f"cache-{i}" for i, name in enumerate(packages)}
    for name, package in packages.items():  # a cold load fills each cache
        run([sys.executable, "-c", LOAD, source, str(caches[name]), env["MLFLOW_TRACKING_URI"]], package, work, env)
    for _ in range(repeats):
        for name, package in packages.items():
            results[name]["help"].append(wall(command() + ["--help"], package, work, env))
            results[name]["import"].append(
                wall([sys.executable, "-c", "import elistimator_tracking"], package, work, env)
            )
            done = run(
                [sys.executable, "-c", LOAD, source, str(caches[name]), env["MLFLOW_TRACKING_URI"]], package, work, env
            )
            results[name]["load"].append(json.loads(done.stdout.strip().splitlines()[-1]))
        packages = dict(reversed(list(packages.items())))  # alternate which goes first
    return results


def print_tables(results: dict, source: str, repeats: int) -> None:
    print(
        f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {repeats} fresh processes each, "
        "alternating; seconds, median (best)"
    )
    print("| package | `elistimator --help` | `import elistimator_tracking` |")
    print("| --- | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | {cell(r['help'])} | {cell(r['import'])} |")
    keys = ("total", "tensorflow", "mlflow", "package", "modules", "from_disk", "predict")
    print(f"\n`from_disk({source!r})` + first `predict`, warm cache")
    print(
        "| package | total | TensorFlow import | MLflow import | package's share | of it: modules | from_disk | "
        "first predict |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(cell([load[k] for load in r["load"]]) for k in keys) + " |")


def cell(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f})"


def prepare(data_dir: str, work: Path, env: dict[str, str]) -> str:
    run([sys.executable, "-c", PREPARE, data_dir, str(ROOT / "examples")], ROOT, work, env)
    return "models:/mnist-cnn@champion"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(mnist_dir()), help="default: $ELISTIMATOR_MNIST_DIR or data/mnist")
    parser.add_argument("--source", help="a registered model (default: register one in a temporary store)")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    parser.add_argument("--compare-with", type=Path, help="a directory holding another elistimator_tracking")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--plot", metavar="FILE.png", help=PLOT_HELP)
    args = parser.parse_args()
    packages: dict[str, Path] = {"this checkout": ROOT}
    if args.compare_with:
        packages = {f"{args.compare_with}": args.compare_with.absolute(), **packages}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as work:
        work = Path(work)
        uri: str | None = args.tracking_uri if args.source else None
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri or f"sqlite:///{work / 'mlflow.db'}"}
        source = args.source or prepare(args.data_dir, work, env)
        results = measure(packages, source, work, env, args.repeats)
        charts = [("seconds, medians of fresh processes", None), ("from_disk and the first predict: seconds", None)]
        with captured(args.plot, *charts):
            print_tables(results, source, args.repeats)


if __name__ == "__main__":
    main()
