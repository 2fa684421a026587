"""What a tracked run prints on its own: nothing MLflow says that is not news (progress bars of
artifact copies, the store's table-creation INFO lines, the type-hint advice on our pyfunc model)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys, warnings
sys.path.insert(0, {tests!r})
warnings.simplefilter("always")
from conftest import fit_targets, target_model_fn
from elistimator_tracking import Elistimator
store = "sqlite:///{root}/store.db"
with Elistimator(target_model_fn, "{root}/model", verbose=False, tracking=store, experiment="quiet") as est:
    fit_targets(est, [1.0, 0.5, 2.0])
    est.register_best("quiet")
    run_id = est.run_id
with Elistimator.from_disk("runs:/" + run_id, checkpoint=3, tracking=store, verbose=False) as est:
    print("restored", est.global_step)
"""
NOISE = (
    "Downloading artifacts",
    "Uploading artifacts",
    "INFO mlflow",
    "Creating initial MLflow database",
    "type hints",
    "Failed to infer model signature",
    "View run",
)


def test_a_quiet_tracked_run_prints_its_own_output_and_no_mlflow_noise(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_LOGGING_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(tests=str(Path(__file__).parent), root=tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == "restored 3\n"
    printed = done.stdout + done.stderr
    assert [noise for noise in NOISE if noise in printed] == []
