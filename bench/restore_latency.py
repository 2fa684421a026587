"""Time from ``Elistimator.from_disk('models:/...')`` to the first prediction, in fresh processes.

Each measurement is a new Python process (as on a machine that only has the tracking
URI): it imports the package, loads the registered version (cold: empty download
cache; warm: the cache from the cold run), and predicts one image. Register a model
first, e.g. with ``examples/mnist_example.py`` (``mnist-cnn@champion``).

    python bench/restore_latency.py --source models:/mnist-cnn@champion --tracking-uri sqlite:///mlflow.db
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
start = time.perf_counter()
import numpy as np
from elistimator_tracking import Elistimator
imported = time.perf_counter()
estimator = Elistimator.from_disk(sys.argv[1], cache_dir=sys.argv[2], verbose=False, tracking=False)
loaded = time.perf_counter()
answer = estimator.predict(images=np.zeros((1, 784), np.float32))
done = time.perf_counter()
print(json.dumps({"import": imported - start, "from_disk": loaded - imported, "predict": done - loaded,
                  "total": done - start, "step": estimator.global_step}))
"""


def measure(source: str, cache: str, env) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, source, cache], capture_output=True, text=True, env=env,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="models:/mnist-cnn@champion")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "MLFLOW_TRACKING_URI": args.tracking_uri}
    runs = {"cold cache": [], "warm cache": []}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
            runs["cold cache"].append(measure(args.source, cache, env))
            runs["warm cache"].append(measure(args.source, cache, env))
    print(f"{args.source} (step {runs['cold cache'][0]['step']}), median of {args.repeats} fresh processes, seconds")
    print(f"{'':<12}{'import':>8}{'from_disk':>11}{'predict':>9}{'total':>8}")
    for name, results in runs.items():
        row = {key: statistics.median(r[key] for r in results) for key in ("import", "from_disk", "predict", "total")}
        print(f"{name:<12}{row['import']:>8.2f}{row['from_disk']:>11.2f}{row['predict']:>9.2f}{row['total']:>8.2f}")


if __name__ == "__main__":
    main()
