"""How to look at what a run produced: the commands a user can paste."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def ui_hint(tracking_uri: str) -> str:
    """The command (or address) that opens the MLflow UI on ``tracking_uri``."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri} in a browser"
    return f"{command('mlflow')} ui --backend-store-uri {tracking_uri}   (then open http://127.0.0.1:5000)"


def command(name: str) -> str:
    """``name`` if it is on PATH, else its path next to this Python (a venv that is not activated)."""
    beside = Path(sys.executable).parent / name
    if shutil.which(name) or not beside.exists():
        return name
    return os.path.relpath(beside) if not os.path.relpath(beside).startswith("..") else str(beside)
