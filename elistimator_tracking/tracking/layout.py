"""Where an Elistimator's things live in MLflow: artifact paths and model source URIs.

A leaf module (no MLflow import): the tracking listener, the remote resolution and the
registry all name the same places through it.
"""

from __future__ import annotations

import re

from ..errors import InvalidValueError

CHECKPOINT_ARTIFACTS = "checkpoints"
STEP_DIR = re.compile(r"step-(\d+)")
MODEL_DIR_ARTIFACT = "model_dir"  # the pyfunc artifact of a checkpoint's logged model that holds the checkpoint
SOURCE = re.compile(
    r"^(?:runs:/(?P<run>[0-9a-zA-Z_-]+)/?"
    r"|models:/(?P<model_id>m-[0-9a-f]+)/?"
    r"|models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))/?)$"
)


def checkpoint_artifact_path(step: int) -> str:
    """``checkpoints/step-<N>``: a logged checkpoint, itself a model directory."""
    return f"{CHECKPOINT_ARTIFACTS}/step-{step}"


def is_remote_source(source: object) -> bool:
    """``runs:/...`` or ``models:/...`` rather than a local model directory."""
    return isinstance(source, str) and source.startswith(("runs:/", "models:/"))


def parse_source(source: str) -> dict[str, str | None]:
    """``{'run', 'model_id', 'name', 'version', 'alias'}`` of a ``runs:/`` or ``models:/`` source."""
    match = SOURCE.match(source)
    if not match:
        raise InvalidValueError(
            f"{source!r} is not a model source: expected a model directory, runs:/<run_id>, "
            "models:/<name>/<version>, models:/<name>@<alias> or models:/m-<logged model id>"
        )
    return match.groupdict()
