"""Run the parity programs (``programs/*.py``) on the real tf.estimator and on ours, and say which ran.

    python tests/estimator_parity/run_programs.py [--sides real ours] [--programs mnist_r1 ...] [--out runs.json]

Each program runs in a process of its own: ``side.REAL_PYTHON`` (the TF 2.15 venv) for the real side, this
interpreter for ours (tracking to a SQLite store in a temporary folder, created before the first program,
as a user's existing local store). Returns one record per run: ok, the program's RESULT line, its seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROGRAMS = [
    "mnist_r1",
    "iris_custom",
    "regression_numpy",
    "text_cnn",
    "char_lstm",
    "hooks_program",
    "warm_start_export",
    "premade",
    "repeated_calls",
]


def python_of(side: str) -> str:
    from side import REAL_PYTHON

    return REAL_PYTHON if side == "real" else sys.executable


def prepared_store(root: Path) -> str:
    """A local SQLite tracking store that exists already (its tables made once, as a user's would be)."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    subprocess.run(
        [sys.executable, "-c", "import mlflow; mlflow.MlflowClient().search_experiments()"], env=env, check=True
    )
    return uri


def run_one(program: str, side: str, root: Path, uri: str, timeout: float = 1800) -> dict:
    from side import environment

    env = environment(
        side, PARITY_WORK=str(root), MLFLOW_TRACKING_URI=uri, MLFLOW_DISABLE_TELEMETRY="true", TF_CPP_MIN_LOG_LEVEL="2"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [python_of(side), str(HERE / "programs" / f"{program}.py")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    seconds = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    result = json.loads(lines[-1][len("RESULT ") :]) if lines else None
    return {
        "program": program,
        "side": side,
        "ok": done.returncode == 0 and result is not None,
        "process_seconds": seconds,
        "result": result,
        "error": None if done.returncode == 0 else done.stderr.strip().splitlines()[-3:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", nargs="+", default=["real", "ours"])
    parser.add_argument("--programs", nargs="+", default=PROGRAMS)
    parser.add_argument("--out")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    runs = []
    with tempfile.TemporaryDirectory(prefix="parity-programs-") as work:
        root = Path(work)
        uri = prepared_store(root)
        for program in args.programs:
            for side in args.sides:
                run = run_one(program, side, root, uri)
                runs.append(run)
                metrics = (run["result"] or {}).get("metrics")
                ran = "ran" if run["ok"] else "FAILED"
                print(
                    f"{program:18} {side:4} {ran} {run['process_seconds']:6.1f} s {metrics or run['error']}", flush=True
                )
    if args.out:
        Path(args.out).write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main()
