"""A database store (``postgresql://``) that is down is told at once, like an HTTP store: MLflow
would retry creating its engine for about 100 s, logging every attempt (measured: the CLI answered
after 106 s, with 46 lines of MLflow's warnings before its own; a training never heard that tracking
was behind)."""

from __future__ import annotations

import subprocess
import sys
import warnings

from conftest import dataset_fn, tiny_model_fn
from mlflow_server import free_port

from elistimator_tracking import Elistimator, TrackingWarning
from elistimator_tracking.tracking.mlflow_tracker import MlflowTracker


def down() -> str:
    return f"postgresql://mlflow:pw@127.0.0.1:{free_port()}/mlflow"  # nothing listens there


def test_the_command_answers_a_database_store_that_is_down_in_one_line_at_once():
    store = down()
    done = subprocess.run(
        [sys.executable, "-m", "elistimator_tracking.cli", "runs", "x", "--tracking-uri", store],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and done.stdout == ""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("elistimator runs: error: the tracking store postgresql://127.0.0.1:")
    assert "does not answer" in lines[0] and "pw" not in lines[0]


def test_a_training_against_a_database_store_that_is_down_hears_that_tracking_is_behind(tmp_path, data):
    (x, y), (vx, vy) = data
    tracker = MlflowTracker(down(), start_timeout=2, close_timeout=2, max_backoff=0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TrackingWarning)
        with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=tracker) as est:
            est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            est.train().validate()
            est.save_ckpt()
    behind = [str(w.message) for w in caught if "is behind" in str(w.message)]
    assert len(behind) == 1 and "Connection refused" in behind[0] and "kept in" in behind[0]
    assert list((tmp_path / "model" / "tracking").glob("store-*/journal.jsonl"))
