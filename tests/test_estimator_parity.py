"""tests/estimator_parity on ours, against what the real tf.estimator (TF 2.15.1 + tensorflow-estimator 2.15.0) did.

Without the real one's venv (``ELISTIMATOR_TF215_PYTHON``, default ``/work/venvs/tf215/bin/python``) the
record ``real_observed.json`` stands for it; the tests that run the real one skip, saying so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PARITY = Path(__file__).with_name("estimator_parity")
sys.path.insert(0, str(PARITY))
import run as behaviours_run  # noqa: E402
import run_programs  # noqa: E402
from side import REAL_PYTHON, environment  # noqa: E402

pytestmark = pytest.mark.slow
RECORD = json.loads((PARITY / "real_observed.json").read_text())
NO_REAL = not os.path.exists(REAL_PYTHON)
WHY = f"the real tf.estimator's venv ({REAL_PYTHON}: TF 2.15.1 + tensorflow-estimator 2.15.0) is not installed here"


def behaviours_on(side: str, python: str, out: Path) -> dict:
    env = environment(side)
    subprocess.run(
        [python, str(PARITY / "run.py"), "--out", str(out)], env=env, check=True, capture_output=True, timeout=3600
    )
    return json.loads(out.read_text())


def test_every_behaviour_is_the_real_tf_estimators(tmp_path):
    ours = behaviours_on("ours", sys.executable, tmp_path / "ours.json")
    matching, differing = behaviours_run.compare(RECORD, ours)
    assert differing == [], {name: (RECORD[name], ours[name]) for name in differing}
    assert len(matching) == len(RECORD) == len(ours)  # 92 behaviours (docs/estimator.md)


@pytest.mark.skipif(NO_REAL, reason=WHY)
def test_the_record_is_what_the_real_tf_estimator_does(tmp_path):
    real = behaviours_on("real", REAL_PYTHON, tmp_path / "real.json")
    assert {name: r.get("value", r.get("error")) for name, r in real.items()} == {
        name: r.get("value", r.get("error")) for name, r in RECORD.items()
    }


def test_every_program_runs_unchanged_on_ours(tmp_path):
    uri = run_programs.prepared_store(tmp_path)
    runs = [run_programs.run_one(program, "ours", tmp_path, uri) for program in run_programs.PROGRAMS]
    assert [r["program"] for r in runs if not r["ok"]] == [], [r["error"] for r in runs if not r["ok"]]
    accuracies = {r["program"]: r["result"]["metrics"].get("accuracy") for r in runs}
    # the real one's accuracies in the same run of run_programs.py (docs/estimator.md): 0.95-1.0
    assert all(a is None or a > 0.85 for a in accuracies.values()), accuracies


@pytest.mark.skipif(NO_REAL, reason=WHY)
def test_the_real_tf_estimator_and_ours_continue_each_others_model_dir(tmp_path):
    model_dir = str(tmp_path / "model")

    def continued(side: str, python: str, max_steps: int) -> dict:
        env = environment(side)
        done = subprocess.run(
            [python, str(PARITY / "cross_side.py"), model_dir, str(max_steps)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.split("RESULT ", 1)[1])

    assert continued("ours", sys.executable, 20)["latest"] == "checkpoints/model-20"
    real = continued("real", REAL_PYTHON, 25)  # tf.train.latest_checkpoint finds ours; tf.estimator goes on from it
    assert (real["found"], real["evaluated_step"], real["global_step"]) == ("checkpoints/model-20", 20, 25)
    ours = continued("ours", sys.executable, 30)  # and ours goes on from tf.estimator's model.ckpt-25
    assert (ours["found"], ours["evaluated_step"], ours["global_step"]) == ("model.ckpt-25", 25, 30)
