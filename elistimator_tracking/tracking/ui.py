"""How to look at what a run produced: the commands a user can paste, and deep links into the UI.

MLflow 3.17's UI opens an experiment in its GenAI view (a traces dashboard, no runs) unless the
browser remembers the "Model training" switch (local storage ``mlflow.workflowType``); the
experiment's tags do not change that. A link's ``?workflowType=machine_learning`` does: so every
link printed here carries it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default
WORKFLOW = "workflowType=machine_learning"


def ui_address(tracking_uri: str) -> str:
    """The UI's address for ``tracking_uri``: the server itself, or the ``mlflow ui`` the user is told to start."""
    return tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else LOCAL_UI


def experiment_link(tracking_uri: str, experiment_id: str) -> str:
    """The experiment's runs table in the UI (the "Model training" view)."""
    return f"{ui_address(tracking_uri)}/#/experiments/{experiment_id}?{WORKFLOW}"


def ui_hint(tracking_uri: str, run_id: str | None = None) -> str:
    """The command (or address) that opens the MLflow UI on ``tracking_uri``, linking to the
    experiment of ``run_id`` when given (looked up in the store; the UI's front page if that fails)."""
    link = ui_address(tracking_uri)
    if run_id:
        try:
            link = experiment_link(tracking_uri, _experiment_of(tracking_uri, run_id))
        except Exception:  # noqa: BLE001 -- a hint without the deep link is still a hint
            pass
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {link} in a browser"
    return f"{command('mlflow')} ui --backend-store-uri {tracking_uri}   (then open {link})"


def registered(tracking_uri: str, name: str, version: str, alias: str = "champion") -> str:
    """One line on a registration: the version, and whether ``alias`` moved to it or stayed (the
    registry's alias rule moves it only to a better version), as the store says now."""
    from mlflow.tracking import MlflowClient

    from .http_limits import bounded
    from .store_uri import StoreUri

    try:
        with bounded():
            holder = MlflowClient(StoreUri.given(tracking_uri).client_uri).get_model_version_by_alias(name, alias)
        where = (
            f"@{alias} moved to it"
            if str(holder.version) == str(version)
            else f"@{alias} stays on version {holder.version}, which is at least as good"
        )
    except Exception as error:  # noqa: BLE001 -- the line still names the version
        where = f"@{alias} could not be read ({type(error).__name__})"
    return f"registered models:/{name}/{version}; {where}"


def _experiment_of(tracking_uri: str, run_id: str) -> str:
    from mlflow.tracking import MlflowClient

    from .http_limits import bounded
    from .store_uri import StoreUri

    with bounded():
        return MlflowClient(StoreUri.given(tracking_uri).client_uri).get_run(run_id).info.experiment_id


def command(name: str) -> str:
    """``name`` if it is on PATH, else its path next to this Python (a venv that is not activated)."""
    beside = Path(sys.executable).parent / name
    if shutil.which(name) or not beside.exists():
        return name
    return os.path.relpath(beside) if not os.path.relpath(beside).startswith("..") else str(beside)
