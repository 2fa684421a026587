"""The MLflow details the package relies on where MLflow offers no public way (``http_limits.py``:
its request limits and printing; ``store_uri.py``: credentials for one host; ``download_cache.download``:
the download threads), checked so a new MLflow release that changes them fails here, loudly,
instead of quietly changing what the package does; and the user's own MLflow calls in the same
process, which must behave exactly as they do without the package."""

from __future__ import annotations

import inspect
import subprocess
import sys

import mlflow
from mlflow.environment_variables import (
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR,
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    MLFLOW_HTTP_REQUEST_TIMEOUT,
    MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT,
)
from mlflow.store.artifact.artifact_repo import ArtifactRepository
from mlflow.utils import rest_utils

from elistimator_tracking.tracking.http_limits import bounded, in_our_call, quiet


def test_mlflow_still_reads_its_request_limits_at_each_request():
    """``bounded`` overrides these settings' ``get`` for our calls: MLflow must read them per request."""
    source = inspect.getsource(rest_utils.http_request)
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES.get()" in source and "MLFLOW_HTTP_REQUEST_TIMEOUT.get()" in source
    for variable in (
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR,
        MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT,
    ):
        assert callable(variable.get) and isinstance(variable.name, str)


def test_mlflow_still_builds_host_credentials_as_the_credentials_patch_expects():
    parameters = inspect.signature(rest_utils.MlflowHostCreds.__init__).parameters
    assert list(parameters)[:5] == ["self", "host", "username", "password", "token"]
    assert "host_creds.username and host_creds.password" in inspect.getsource(rest_utils.http_request)


def test_mlflow_still_downloads_on_the_repositorys_own_thread_pool():
    """``download_cache.download`` runs those threads in the caller's context by wrapping ``thread_pool``."""
    assert "self.thread_pool.submit" in inspect.getsource(ArtifactRepository.download_artifacts)


def default_in_a_fresh_process(expression: str) -> str:
    """What ``expression`` gives in a process that never imported this package."""
    done = subprocess.run(
        [sys.executable, "-c", f"import mlflow.environment_variables as e; print({expression})"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


def test_the_users_own_calls_keep_mlflows_retries_timeouts_and_printing():
    with bounded(timeout=3.0), quiet():  # the package's own calls: bounded and quiet
        assert in_our_call()
        assert (MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_TIMEOUT.get()) == (0, 3.0)
        assert MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get() is False
    assert not in_our_call()
    for name in (
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR",
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT",
    ):
        variable = getattr(mlflow.environment_variables, name)
        assert str(variable.get()) == default_in_a_fresh_process(f"e.{name}.get()"), name


def test_the_users_own_run_prints_its_link_as_without_the_package(shared_server, capfd, monkeypatch):
    with bounded(), quiet():
        pass  # the package's settings are installed, and left
    monkeypatch.setenv("MLFLOW_TRACKING_URI", shared_server.uri)
    mlflow.set_tracking_uri(shared_server.uri)
    try:
        mlflow.set_experiment("users-own")
        with mlflow.start_run():
            mlflow.log_param("a", 1)
    finally:
        mlflow.set_tracking_uri(None)
    out = capfd.readouterr().out
    assert "View run" in out and shared_server.uri in out
