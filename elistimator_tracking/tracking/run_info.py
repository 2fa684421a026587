"""What a run is described by: params, tags and its name (secrets redacted), and provenance tags.

Redaction has one vocabulary and one implementation, ``redaction.py`` (``is_secret_name``,
re-exported here with ``scrub`` = ``redact_text`` and ``scrub_source`` = ``redact_source``). A
secret-looking param or tag shows ``<redacted>``; so does everything nested under a
secret-looking parent (``credentials.value``). Any other value, the run name and the error text
of a failed run are ``scrub``-bed: user info in URLs and DSNs, values given to secret-looking
names in every ``name=value`` / ``name: value`` form, and bearer tokens are redacted.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .._version import __version__
from .names import (
    GIT_COMMIT_TAG,
    GIT_DIRTY_TAG,
    MLFLOW_VERSION_TAG,
    MODEL_FN_SOURCE_TAG,
    MODEL_FN_TAG,
    PYTHON_VERSION_TAG,
    SELECTED_BY_TAG,
    SOURCE_ARTIFACTS,
    STEP_TAG,
    TENSORFLOW_VERSION_TAG,
    VALIDATION,
    VERSION_TAG,
    metric,
    selected_by,
)
from .redaction import REDACTED, is_secret_name, redact_source, redact_text

MAX_PARAM_KEY = 250  # MLflow's limits
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_SOURCE_BYTES = 1_000_000
INVALID_NAME_CHARACTERS = re.compile(r"[^/\w.\- :]")  # what MLflow refuses in param, metric and tag names
scrub = redact_text  # what run_info's callers call: one implementation, in redaction.py
scrub_source = redact_source


def redacted(values: Mapping[str, Any], limit: int = MAX_TAG_VALUE) -> dict[str, str]:
    """Tags (or flat params) as they may be sent: secret-looking keys redacted, other values scrubbed
    and cut to ``limit`` characters."""
    return {key: REDACTED if is_secret_name(key) else _cut(scrub(str(value)), limit) for key, value in values.items()}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def mlflow_name(name: Any) -> str:
    """``name`` as MLflow accepts it for a param, metric or tag: other characters become ``_``, no
    empty, ``.`` or ``..`` path parts, at most 250 characters (a cut name ends with a hash of the
    whole, so two long names stay apart)."""
    parts = [
        part if part != ".." else "__"
        for part in INVALID_NAME_CHARACTERS.sub("_", str(name)).split("/")
        if part not in ("", ".")
    ]
    cleaned = "/".join(parts) or "_"
    if len(cleaned) > MAX_PARAM_KEY:
        digest = hashlib.sha256(cleaned.encode("utf-8")).hexdigest()[:8]
        cleaned = cleaned[: MAX_PARAM_KEY - 9].rstrip("/") + "-" + digest
    return cleaned


def run_params(params: Mapping[Any, Any], saver: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The params a run logs: ``params`` flattened (``{'a': {'b': 1}}`` -> ``a.b``) and the saver
    settings as ``saver.<name>``, redacted, values cut to MLflow's limit, each under a distinct name
    MLflow accepts. Returns them and a note per param logged under another name than its own
    (renamed deterministically: ``a.b`` twice becomes ``a.b`` and ``a.b-2``)."""
    named: dict[str, str] = {}
    notes = []
    for path, value in [*_flattened(params, ""), *_flattened(saver, "saver.")]:
        name = base = mlflow_name(path)
        number = 1
        while name in named:
            number += 1
            name = f"{base[: MAX_PARAM_KEY - len(str(number)) - 1]}-{number}"
        if name != path:
            notes.append(f"{_short(path)!r} as {_short(name)!r}")
        named[name] = REDACTED if is_secret_name(path) else _cut(scrub(str(value)), MAX_PARAM_VALUE)
    return named, notes


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[: limit - 14]}...{text[-11:]}"


def _flattened(params: Mapping[Any, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for key, value in params.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flattened(value, f"{path}.")
        else:
            yield path, value


def provenance_tags(model_fn: Callable | None) -> dict[str, str]:
    """Package versions, the model function's qualified name and the artifact of its file, and git
    commit/dirty when in a repository."""
    import mlflow

    from .._tf import tf

    tags = {
        VERSION_TAG: __version__,
        TENSORFLOW_VERSION_TAG: tf.__version__,
        MLFLOW_VERSION_TAG: mlflow.__version__,
        PYTHON_VERSION_TAG: sys.version.split()[0],
    }
    if model_fn is not None:
        name = getattr(model_fn, "__qualname__", repr(model_fn))
        tags[MODEL_FN_TAG] = f"{getattr(model_fn, '__module__', '?')}.{name}"
    source = model_fn_file(model_fn)
    if source is not None:
        tags[MODEL_FN_SOURCE_TAG] = f"{SOURCE_ARTIFACTS}/{source.name}"  # the listener logs the file
    tags.update(git_tags(_source_dir(model_fn)))
    return tags


def git_tags(directory: Path) -> dict[str, str]:
    """``mlflow.source.git.commit`` and ``git.dirty`` for the repository holding ``directory``, if any."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {GIT_COMMIT_TAG: commit, GIT_DIRTY_TAG: str(bool(dirty)).lower()}


def model_fn_file(model_fn: Callable | None) -> Path | None:
    """The Python file that defines ``model_fn`` (None for one defined elsewhere: a notebook cell, a
    built-in, a file over ``MAX_SOURCE_BYTES`` or with a secret-looking name)."""
    code = getattr(model_fn, "__code__", None)
    if code is None or not code.co_filename.endswith(".py") or not os.path.isfile(code.co_filename):
        return None
    path = Path(code.co_filename).resolve()
    if is_secret_name(path.stem) or path.stat().st_size > MAX_SOURCE_BYTES:
        return None
    return path


def _source_dir(model_fn: Callable | None) -> Path:
    code = getattr(model_fn, "__code__", None)
    if code is not None and os.path.isfile(code.co_filename):
        return Path(code.co_filename).resolve().parent
    return Path.cwd()


def version_tags(step: int, metrics: Mapping[str, float], criterion: Any) -> dict[str, str]:
    """Tags of a registered version: its global step, how it was chosen (a ``Criterion``), its
    validation metrics."""
    return {
        STEP_TAG: str(step),
        SELECTED_BY_TAG: selected_by(criterion.metric, criterion.direction),
        **{metric(VALIDATION, k): repr(float(v)) for k, v in metrics.items()},
    }
