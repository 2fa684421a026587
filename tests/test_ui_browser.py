"""The MLflow UI as a user sees it, in headless Chromium (Debian's ``chromium``) over a real
``mlflow server``: the link the package prints opens the runs table, not the GenAI dashboard,
and a run's page lists its checkpoints as logged models."""

from __future__ import annotations

import html
import re
import shutil
import subprocess

import pytest
from conftest import fit_targets, target_model_fn
from mlflow import MlflowClient
from mlflow_server import MlflowServer

from elistimator_tracking import Elistimator
from elistimator_tracking.tracking.ui import WORKFLOW, experiment_link, ui_address

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (Debian: apt-get install chromium)"),
]
GENAI_DASHBOARD = "Detect Issues in Your Traces"


def run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """A run's page in the UI (its "Logged models" are listed there), in the "Model training" view."""
    return f"{ui_address(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}?{WORKFLOW}"


def page_text(url: str, profile) -> str:
    """The text of ``url`` once the UI rendered it (a fresh browser profile: no remembered view)."""
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    body = re.sub(r"<script.*?</script>|<style.*?</style>", " ", done.stdout, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    server = MlflowServer(root / "server").start()
    try:
        run_ids = []
        for name, course in (("first-run", [1.0, 0.5]), ("second-run", [2.0, 1.0])):
            with Elistimator(
                target_model_fn, root / name, verbose=False, tracking=server.uri, experiment="ui-check", run_name=name
            ) as est:
                fit_targets(est, course)
                run_ids.append(est.run_id)
        experiment_id = MlflowClient(server.uri).get_experiment_by_name("ui-check").experiment_id
        yield server, experiment_id, run_ids, root
    finally:
        server.stop()


def test_the_printed_experiment_link_shows_both_runs_and_no_traces_dashboard(two_runs):
    server, experiment_id, _, root = two_runs
    link = experiment_link(server.uri, experiment_id)
    assert link == f"{server.uri}/#/experiments/{experiment_id}?workflowType=machine_learning"
    text = page_text(link, root / "profile-experiment")
    assert "first-run" in text and "second-run" in text and GENAI_DASHBOARD not in text
    # what a user got before: the same experiment without the parameter opens the GenAI view
    plain = page_text(link.split("?")[0], root / "profile-plain")
    assert GENAI_DASHBOARD in plain and "first-run" not in plain


def test_a_run_page_lists_its_checkpoints_as_logged_models(two_runs):
    server, experiment_id, run_ids, root = two_runs
    text = page_text(run_link(server.uri, experiment_id, run_ids[0]), root / "profile-run")
    listed = text[text.index("Logged models (2)") :]
    assert "step-3 Ready" in listed and "step-6 Ready" in listed
