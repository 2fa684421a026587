"""How long setup() and close() wait on a tracking store that accepts connections and never answers.

Each repeat is a fresh process: a tiny model trains a few steps while tracking to a
server on 127.0.0.1 that accepts TCP connections and never replies. The table shows
the wall time of ``setup()`` and ``close()`` and when the first tracking warning came
(seconds after ``setup()`` began; "-" when none came before close() returned).

    python bench/silent_store.py --repeats 3
    PYTHONPATH=<another checkout> python bench/silent_store.py    # the same on other code
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, tempfile, time, warnings
sys.path.insert(0, sys.argv[1])
from conftest import blobs, dataset_fn, tiny_model_fn
from silent_server import SilentServer
from elistimator_tracking import Elistimator
first = []
shown = warnings.showwarning
def record(message, category, *args, **kwargs):
    if category.__name__ == "TrackingWarning" and not first:
        first.append(time.perf_counter())
warnings.showwarning = record
with SilentServer() as silent, tempfile.TemporaryDirectory() as model_dir:
    est = Elistimator(tiny_model_fn, model_dir, verbose=False, tracking=silent.uri)
    start = time.perf_counter()
    est.setup(dataset_fn(*blobs(70, 0)))
    setup = time.perf_counter() - start
    est.train(steps=3)
    est.save_ckpt()
    before_close = time.perf_counter()
    est.close()
    close = time.perf_counter() - before_close
print(json.dumps({"setup": setup, "close": close, "first_warning": first[0] - start if first else None}))
"""


def measure(env) -> dict:
    tests = str(Path(__file__).resolve().parents[1] / "tests")
    done = subprocess.run([sys.executable, "-c", CHILD, tests], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(Path(__file__).resolve().parents[1]))}
    rows = [measure(env) for _ in range(args.repeats)]
    print(f"{'':>14}  {'median s':>9}  {'max s':>7}")
    for key in ("setup", "close", "first_warning"):
        values = [row[key] for row in rows if row[key] is not None]
        if len(values) < len(rows):
            print(f"{key:>14}  {'-':>9}  {'-':>7}   (no warning before close() in {len(rows) - len(values)} runs)")
        if values:
            print(f"{key:>14}  {statistics.median(values):9.1f}  {max(values):7.1f}")


if __name__ == "__main__":
    main()
