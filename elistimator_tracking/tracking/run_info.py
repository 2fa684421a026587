"""What a run is described by: flattened params (secrets redacted) and provenance tags."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional

from .._version import __version__

MAX_PARAM_KEY = 250  # MLflow's limits
MAX_PARAM_VALUE = 6000
SECRET_KEY = re.compile(r"pass(word|wd)?|token|secret|api[_\-.]?key|credential|private[_\-.]?key", re.IGNORECASE)
REDACTED = "<redacted>"
INVALID_NAME_CHARACTERS = re.compile(r"[^/\w.\- :]")  # what MLflow refuses in param and metric names


def mlflow_name(name: str) -> str:
    """``name`` as MLflow accepts it: other characters become ``_``, at most 250 characters."""
    return INVALID_NAME_CHARACTERS.sub("_", name)[:MAX_PARAM_KEY]


def flatten_params(params: Mapping[Any, Any], prefix: str = "") -> Dict[str, str]:
    """``{'a': {'b': 1}}`` -> ``{'a.b': '1'}``; secret-looking keys redacted, values cut to MLflow's limit."""
    flat: Dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, prefix=f"{name}."))
            continue
        text = REDACTED if SECRET_KEY.search(str(key)) else str(value)
        if len(text) > MAX_PARAM_VALUE:
            text = text[:MAX_PARAM_VALUE - 3] + "..."
        flat[mlflow_name(name)] = text
    return flat


def provenance_tags(model_fn: Optional[Callable]) -> Dict[str, str]:
    """Package versions, the model function's qualified name, and git commit/dirty when in a repository."""
    from .._tf import tf
    import mlflow
    tags = {"elistimator.version": __version__, "tensorflow.version": tf.__version__,
            "mlflow.version": mlflow.__version__, "python.version": sys.version.split()[0]}
    if model_fn is not None:
        tags["elistimator.model_fn"] = f"{getattr(model_fn, '__module__', '?')}.{getattr(model_fn, '__qualname__', repr(model_fn))}"
    tags.update(git_tags(_source_dir(model_fn)))
    return tags


def git_tags(directory: Path) -> Dict[str, str]:
    """``mlflow.source.git.commit`` and ``git.dirty`` for the repository holding ``directory``, if any."""
    def git(*args: str) -> Optional[str]:
        try:
            done = subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None
    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"mlflow.source.git.commit": commit, "git.dirty": str(bool(dirty)).lower()}


def _source_dir(model_fn: Optional[Callable]) -> Path:
    code = getattr(model_fn, "__code__", None)
    if code is not None and os.path.isfile(code.co_filename):
        return Path(code.co_filename).resolve().parent
    return Path.cwd()


def version_tags(step: int, metrics: Mapping[str, float], metric: str, mode: str) -> Dict[str, str]:
    """Tags of a registered version: its global step, how it was chosen, its validation metrics."""
    return {"elistimator.step": str(step), "elistimator.selected_by": f"validation/{metric} ({mode})",
            **{f"validation/{k}": repr(float(v)) for k, v in metrics.items()}}
