"""Run the tf.estimator behaviours on one side and write what was observed (JSON), or compare two records.

    ESTIMATOR_SIDE=real /work/venvs/tf215/bin/python tests/estimator_parity/run.py --out real.json
    ESTIMATOR_SIDE=ours python tests/estimator_parity/run.py --out ours.json [names...]
    python tests/estimator_parity/run.py --compare real.json ours.json

``--record`` (real side) rewrites ``real_observed.json`` next to this file: the record our tests compare
against. Each behaviour runs in fresh directories under a temporary root; ours tracks to a SQLite store
there (tracking on, as a user's Estimator does).
"""

from __future__ import annotations

import argparse
import atexit
import builtins
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECORD = HERE / "real_observed.json"
sys.path.insert(0, str(HERE))


def error_kinds(error: BaseException) -> list[str]:
    """The built-in exception classes ``error`` is an instance of (what ``except`` clauses catch)."""
    return [
        cls.__name__
        for cls in type(error).__mro__
        if getattr(builtins, cls.__name__, None) is cls and cls not in (Exception, BaseException, object)
    ]


def jsonable(value):
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else str(value)
    return value


class TimedOut(Exception):
    """The behaviour ran for more than 300 s."""


def _timed_out(signum, frame):
    raise TimedOut("still running after 300 s")


def run(names: list[str]) -> dict:
    import behaviours
    import behaviours_canned  # noqa: F401  (registers its behaviours)
    import behaviours_flow  # noqa: F401
    import side

    tf, estimator = side.load()
    signal.signal(signal.SIGALRM, _timed_out)
    chosen = names or list(behaviours.BEHAVIOURS)
    observed = {}
    root = tempfile.mkdtemp(prefix="estimator-parity-")
    atexit.register(shutil.rmtree, root, True)  # after the Estimators' runs end at exit
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    os.chdir(root)
    counter = iter(range(10**6))

    def new_dir() -> str:
        path = os.path.join(root, f"d{next(counter)}")
        os.makedirs(path)
        return path

    for name in chosen:
        start = time.perf_counter()
        signal.alarm(300)  # a behaviour that never ends (e.g. endless data) is an observation too
        try:
            with tf.Graph().as_default():
                result = {"value": jsonable(behaviours.BEHAVIOURS[name](tf, estimator, new_dir))}
        except Exception as error:  # noqa: BLE001 -- what the side raised is the observation
            message = (str(error).strip().splitlines() or [""])[0][:300]
            result = {"error": error_kinds(error), "message": message}
            if os.environ.get("PARITY_TRACEBACKS"):
                traceback.print_exc()
        signal.alarm(0)
        result["seconds"] = round(time.perf_counter() - start, 2)
        observed[name] = result
        print(f"{name}: {json.dumps({k: v for k, v in result.items() if k != 'seconds'})[:400]}", flush=True)
    return observed


def same(real: dict, ours: dict) -> bool:
    """Ours behaves as the real one: the same value, or an error the real one's ``except`` clause catches."""
    if "error" in real:
        return "error" in ours and real["error"][0] in ours["error"]
    return "value" in ours and ours["value"] == real["value"]


def compare(real: dict, ours: dict) -> tuple[list[str], list[str]]:
    """``(matching, differing)`` behaviour names (those both records hold)."""
    names = [name for name in real if name in ours]
    matching = [name for name in names if same(real[name], ours[name])]
    return matching, [name for name in names if name not in matching]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--out")
    parser.add_argument("--record", action="store_true", help="write real_observed.json (real side only)")
    parser.add_argument("--compare", nargs=2, metavar=("REAL", "OURS"))
    args = parser.parse_args()
    if args.compare:
        real, ours = (json.loads(Path(p).read_text()) for p in args.compare)
        matching, differing = compare(real, ours)
        print(f"{len(matching)}/{len(matching) + len(differing)} behave as the real tf.estimator")
        for name in differing:
            print(f"  {name}: real {json.dumps(real[name].get('value', real[name].get('error')))[:200]}")
            print(f"  {' ' * len(name)}  ours {json.dumps(ours[name].get('value', ours[name].get('error')))[:200]}")
        return
    observed = run(args.names)
    if args.record:
        import side

        if side.name() != "real":
            raise SystemExit("--record writes what the real tf.estimator did: run it with ESTIMATOR_SIDE=real")
        recorded = json.loads(RECORD.read_text()) if RECORD.is_file() and args.names else {}
        RECORD.write_text(json.dumps({**recorded, **observed}, indent=1, sort_keys=True) + "\n")
    if args.out:
        Path(args.out).write_text(json.dumps(observed, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
