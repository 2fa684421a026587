"""Wall time of the ``elistimator`` commands, and the time to a one-line error when the store is away.

Each measurement is a fresh process. ``--help``, ``runs`` and ``best`` run on a temporary
SQLite store holding two small tracked runs (tests/conftest.py's tiny model, 3 checkpoints
each). The unreachable stores: ``refused`` (a port nothing listens on) and ``silent`` (a
server on 127.0.0.1 that accepts connections and never answers), with the default store
timeout (``$ELISTIMATOR_STORE_TIMEOUT``, 10 s) unless ``--store-timeout`` is given. The
calls: the CLI's ``runs``, ``from_disk('runs:/...')``, ``register_best`` and ``sync`` of a
model directory holding undelivered work (sync returns what is still pending: no error).
For those, "call s" is the time from the call to its error, after the imports (TensorFlow,
MLflow), which on a busy machine take most of the process's wall time.

    python bench/cli_and_store_waits.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_ID = "0123456789abcdef0123456789abcdef"

PREPARE = r"""
import sys, warnings
sys.path.insert(0, sys.argv[1])
from conftest import blobs, dataset_fn, tiny_model_fn, train_epochs
from elistimator_tracking import Elistimator
from elistimator_tracking.tracking.mlflow_tracker import MlflowTracker
root = sys.argv[2]
for name in ("first", "second"):
    with Elistimator(tiny_model_fn, f"{root}/{name}", params={"learning_rate": 0.1 if name == "first" else 0.5},
                     verbose=False, tracking=f"sqlite:///{root}/store.db", experiment="bench") as est:
        est.setup(dataset_fn(*blobs(70, 0)), dataset_fn(*blobs(30, 1)))
        train_epochs(est, 3)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    with Elistimator(tiny_model_fn, f"{root}/kept", verbose=False,
                     tracking=MlflowTracker("notascheme://typo", start_timeout=1, close_timeout=1)) as est:
        est.setup(dataset_fn(*blobs(70, 0)))
        est.train().save_ckpt()
"""

CALLS = {  # (imports, the call)
    "cli runs": ("from elistimator_tracking.cli import main", "main(['runs', 'mnist', '--tracking-uri', STORE])"),
    "from_disk": (
        "from elistimator_tracking import Elistimator",
        f"Elistimator.from_disk('runs:/{RUN_ID}', tracking=STORE)",
    ),
    "register_best": (
        "from elistimator_tracking.tracking.registry import register_best",
        f"register_best('{RUN_ID}', 'm', tracking_uri=STORE)",
    ),
    "sync": ("from elistimator_tracking.tracking import sync", "print(sync(MODEL_DIR, tracking_uri=STORE))"),
}

CALL = """
import sys, time, mlflow, mlflow.tracking, elistimator_tracking.tracking.resolve
{imports}
STORE, MODEL_DIR = {store!r}, {model_dir!r}
start = time.perf_counter()
try:
    {call}
finally:
    print(f"call {{time.perf_counter() - start:.2f}}", file=sys.stderr, flush=True)
"""

SILENT = r"""
import socket, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(64)
print(server.getsockname()[1], flush=True)
held = []
while True:
    held.append(server.accept()[0])
"""


def timed(argv: list[str], env: dict[str, str]) -> tuple:
    """(wall s, call s or None, exit code, the last line other than the call time)."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    lines = [line for line in (done.stderr.strip() or done.stdout.strip()).splitlines() if line]
    calls = [float(line.split()[1]) for line in lines if line.startswith("call ")]
    shown = [line for line in lines if not line.startswith("call ")] or [""]
    return wall, (calls[0] if calls else None), done.returncode, shown[-1][:80]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--store-timeout", default=None, help="ELISTIMATOR_STORE_TIMEOUT for the calls")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_REQUEST")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if args.store_timeout:
        env["ELISTIMATOR_STORE_TIMEOUT"] = args.store_timeout
    script = str(Path(sys.executable).parent / "elistimator")
    silent = subprocess.Popen([sys.executable, "-c", SILENT], stdout=subprocess.PIPE, text=True)
    silent_uri = f"http://127.0.0.1:{silent.stdout.readline().strip()}"
    with tempfile.TemporaryDirectory() as root:
        subprocess.run(
            [sys.executable, "-c", PREPARE, str(ROOT / "tests"), root], env=env, check=True, capture_output=True
        )
        store = f"sqlite:///{root}/store.db"
        rows = {
            "elistimator --help": [script, "--help"],
            "elistimator runs (SQLite, 2 runs)": [script, "runs", "bench", "--tracking-uri", store],
            "elistimator best (SQLite, 2 runs)": [script, "best", "bench", "--tracking-uri", store],
        }
        for what, (imports, call) in CALLS.items():
            for kind in ("refused", "silent"):
                uri = silent_uri if kind == "silent" else f"http://127.0.0.1:{free_port()}"
                code = CALL.format(imports=imports, store=uri, model_dir=root + "/kept", call=call)
                rows[f"{what}, {kind} store"] = [sys.executable, "-c", code]
        print(f"{'what':<34} {'wall s (median, best)':>22} {'call s (median, best)':>22}  exit  last line")
        try:
            for what, argv in rows.items():
                results = [timed(argv, env) for _ in range(args.repeats)]
                walls, calls = [r[0] for r in results], [r[1] for r in results if r[1] is not None]
                call = f"{statistics.median(calls):>10.2f} {min(calls):>10.2f}" if calls else f"{'-':>10} {'-':>10}"
                print(
                    f"{what:<34} {statistics.median(walls):>11.2f} {min(walls):>10.2f} {call}  {results[-1][2]:>4}  "
                    f"{results[-1][3]}",
                    flush=True,
                )
        finally:
            silent.kill()


if __name__ == "__main__":
    main()
