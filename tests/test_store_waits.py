"""Calls outside training on a store that refuses connections or never answers: a clear error within
the store timeout ($ELISTIMATOR_STORE_TIMEOUT), not minutes of MLflow's retries, and the user's own
MLflow settings untouched (issue 20, finding 3). Each runs in a fresh process with a time limit far
above the bound and far below MLflow's own retries (over 4 minutes measured)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import dataset_fn, tiny_model_fn
from mlflow_server import free_port
from silent_server import SilentServer

from elistimator_tracking import Elistimator
from elistimator_tracking.tracking.mlflow_tracker import MlflowTracker

CALLS = {
    "from_disk": "from elistimator_tracking import Elistimator\n"
    "Elistimator.from_disk('runs:/0123456789abcdef0123456789abcdef', tracking=STORE)",
    "register_best": "from elistimator_tracking.tracking.registry import register_best\n"
    "register_best('0123456789abcdef0123456789abcdef', 'm', tracking_uri=STORE)",
    "sync": "from elistimator_tracking.tracking import sync\nprint(sync(MODEL_DIR, tracking_uri=STORE))",
    "cli": "from elistimator_tracking.cli import main\nimport sys\n"
    "sys.exit(main(['runs', 'mnist', '--tracking-uri', STORE]))",
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A model directory whose tracking work never reached a store (a typo in the URI)."""
    path = tmp_path_factory.mktemp("waits") / "model"
    x = __import__("numpy").zeros((8, 2), "float32")
    with pytest.warns(UserWarning):
        with Elistimator(
            tiny_model_fn,
            path,
            verbose=False,
            tracking=MlflowTracker("notascheme://typo", start_timeout=1, close_timeout=1),
        ) as est:
            est.setup(dataset_fn(x, x[:, 0].astype("int32")))
            est.train().save_ckpt()
    return path


def call(what: str, store: str, model_dir: Path):
    code = (
        f"STORE, MODEL_DIR = {store!r}, {str(model_dir)!r}\n{CALLS[what]}\nimport os\n"
        "assert not [k for k in os.environ if k.startswith('MLFLOW_HTTP_REQUEST')], 'settings changed'\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_REQUEST")}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "ELISTIMATOR_STORE_TIMEOUT": "2"},
        capture_output=True,
        text=True,
        timeout=90,
    )


def last_line(done) -> str:
    return (done.stderr.strip().splitlines() or [""])[-1]


@pytest.mark.parametrize("what", sorted(CALLS))
def test_a_store_that_refuses_connections_is_an_error_at_once(what, model_dir):
    store = f"http://127.0.0.1:{free_port()}"
    done = call(what, store, model_dir)
    if what == "sync":  # sync keeps the work and says how much is left
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.startswith(f"{{{store!r}: ") and done.stdout.strip() != f"{{{store!r}: 0}}"
        return
    assert done.returncode == 1, done.stderr[-2000:]
    assert "127.0.0.1" in last_line(done) and ("Connection" in last_line(done) or "connect" in last_line(done))


@pytest.mark.slow
@pytest.mark.parametrize("what", sorted(CALLS))
def test_a_store_that_never_answers_is_an_error_within_the_store_timeout(what, model_dir):
    with SilentServer() as silent:
        done = call(what, silent.uri, model_dir)
    if what == "sync":
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.startswith(f"{{{silent.uri!r}: ") and done.stdout.strip() != f"{{{silent.uri!r}: 0}}"
        return
    assert done.returncode == 1, done.stderr[-2000:]
    assert "timed out" in last_line(done) or "Read timed out" in last_line(done), last_line(done)
