"""``elistimator.json``: the one module that builds, validates, upgrades, reads and writes it.

It holds everything ``from_disk`` needs (tensor names and input signature, the
checkpoint index with checksums, validation metrics, saver settings) and the MLflow
run a model directory tracks to. It is JSON, never pickle, so loading a model
directory runs no code; it is written to a temporary file and moved into place, so a
crash leaves the old or the new version, never half of one. Paths inside are
relative to the model directory, so a moved directory still loads.

A one-checkpoint *export* of it travels with each checkpoint a run logs and each
registered version: it names the run it came from (``source``) but resumes nothing.

Every write records a new ``generation`` (a random id): a writer compares it with the one it
loaded to notice that another writer committed meanwhile (``commits.py``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .checkpoints import CheckpointIndex, CheckpointRecord
from .errors import ModelDirectoryError
from .model_dir import ModelDirectory, require_directory
from .tracking.run import RunRecord

METADATA_FILE = "elistimator.json"
FORMAT = "elistimator/1"
DEFAULT_MAX_TO_KEEP = 5


@dataclass
class Metadata:
    """What ``elistimator.json`` says about a model directory."""

    graph: dict[str, Any]  # ModelGraph.to_names(): tensor names and the input signature
    index: CheckpointIndex = field(default_factory=CheckpointIndex)
    global_step: int = 0
    max_to_keep: int | None = DEFAULT_MAX_TO_KEEP
    saver_args: dict[str, Any] = field(default_factory=dict)
    tracking: RunRecord | None = None  # the run to resume
    source: dict[str, Any] | None = None  # an export's origin: tracking_uri, run_id, step
    generation: str | None = None  # the commit that wrote it (None: written before generations)

    def to_json(self) -> dict[str, Any]:
        data = {
            "format": FORMAT,
            "graph": self.graph,
            "global_step": self.global_step,
            "max_to_keep": self.max_to_keep,
            "saver_args": self.saver_args,
            **self.index.to_json(),
            "tracking": self.tracking.to_json() if self.tracking is not None else None,
        }
        if self.source is not None:
            data["source"] = self.source
        if self.generation is not None:
            data["generation"] = self.generation
        return data

    def export(self, step: int) -> Metadata:
        """The metadata of a copy holding just the checkpoint at ``step`` (its files included)."""
        record = self.index.records[step]
        index = CheckpointIndex(
            [CheckpointRecord(step, record.prefix, dict(record.files), local=True)],
            {step: self.index.metrics(step)} if step in self.index.validations else {},
        )
        run = self.tracking
        source = {"tracking_uri": run.tracking_uri, "run_id": run.run_id, "step": step} if run and run.run_id else None
        return replace(self, index=index, global_step=step, tracking=None, source=source)


def read(directory: ModelDirectory) -> Metadata:
    """The validated metadata of ``directory``; ``ModelDirectoryError`` naming what is wrong."""
    path = directory.path / METADATA_FILE
    require_directory(directory.path)
    if not path.is_file():
        raise ModelDirectoryError(
            f"{str(directory.path)!r} is not an Elistimator model directory: it has no {METADATA_FILE}"
        )
    directory.resolve(METADATA_FILE)  # a link leaving the directory is refused
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelDirectoryError(f"{path} is corrupt or truncated ({error}); it is not valid JSON") from None
    return from_json(data, directory)


def from_json(data: Any, directory: ModelDirectory) -> Metadata:
    """Validate (and upgrade) parsed JSON; paths are checked to stay inside ``directory``."""
    where = directory.path / METADATA_FILE
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelDirectoryError(f'{where} is not Elistimator metadata (expected "format": "{FORMAT}")')
    data = _upgraded(data)
    for key in ("graph", "checkpoints", "validations"):
        if not isinstance(data.get(key), dict):
            raise ModelDirectoryError(f"{where} is incomplete: {key!r} is missing or not an object")
    for step, entry in data["checkpoints"].items():
        _check_checkpoint_entry(where, directory, step, entry)
    for step, metrics in data["validations"].items():
        if (
            not str(step).isdigit()
            or not isinstance(metrics, dict)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values())
        ):
            raise ModelDirectoryError(f"{where} has malformed validation metrics at step {step!r}")
    if data.get("source") is not None and not isinstance(data["source"], dict):
        raise ModelDirectoryError(f"{where} has a malformed 'source' record")
    if data.get("generation") is not None and not isinstance(data["generation"], str):
        raise ModelDirectoryError(f"{where} has a malformed generation {data['generation']!r}")
    max_to_keep = data["max_to_keep"]
    if max_to_keep is not None and (
        isinstance(max_to_keep, bool) or not isinstance(max_to_keep, int) or max_to_keep < 1
    ):
        raise ModelDirectoryError(f"{where} has an invalid max_to_keep {max_to_keep!r}")
    if not isinstance(data["saver_args"], dict) or not isinstance(data["global_step"], int):
        raise ModelDirectoryError(f"{where} has malformed saver_args or global_step")
    return Metadata(
        graph=data["graph"],
        index=CheckpointIndex.from_json(data),
        global_step=data["global_step"],
        max_to_keep=max_to_keep,
        saver_args=dict(data["saver_args"]),
        tracking=RunRecord.from_json(data["tracking"], where) if data.get("tracking") is not None else None,
        source=data.get("source"),
        generation=data.get("generation"),
    )


def _upgraded(data: dict[str, Any]) -> dict[str, Any]:
    """Fill in fields that older writers of this format left out."""
    return {"global_step": 0, "max_to_keep": DEFAULT_MAX_TO_KEEP, "saver_args": {}, "tracking": None, **data}


def _check_checkpoint_entry(where: Path, directory: ModelDirectory, step: Any, entry: Any) -> None:
    if (
        not str(step).isdigit()
        or not isinstance(entry, dict)
        or not isinstance(entry.get("prefix"), str)
        or not isinstance(entry.get("files", {}), dict)
        or not isinstance(entry.get("local", True), bool)
        or not isinstance(entry.get("stored", True), bool)
    ):
        raise ModelDirectoryError(f"{where} has a malformed checkpoint entry {step!r}")
    directory.resolve(entry["prefix"])
    stem = Path(entry["prefix"]).name + "."
    for name in entry.get("files", {}):
        if not isinstance(name, str) or Path(name).name != name or not name.startswith(stem):
            raise ModelDirectoryError(
                f"{where} lists a file {name!r} for checkpoint {step} that is not one of its own ({stem}*)"
            )


def write(directory: ModelDirectory, metadata: Metadata, generation: str | None = None) -> str:
    """Replace ``elistimator.json`` atomically (never through a link) as a new generation, or as
    ``generation`` (what only tracking bookkeeping changed: the run's id or status, what the store
    holds; nothing another writer's model would lose); return it."""
    generation = generation or uuid.uuid4().hex
    directory.write_json(METADATA_FILE, replace(metadata, generation=generation).to_json())
    return generation


def generation(directory: ModelDirectory) -> str | None:
    """The generation ``elistimator.json`` holds now (None: no file, or one written before generations)."""
    return read(directory).generation if exists(directory) else None


def exists(directory: ModelDirectory) -> bool:
    return (directory.path / METADATA_FILE).is_file()


def read_verified(directory: ModelDirectory) -> Metadata:
    """The metadata, after checking every local checkpoint's files against their checksums."""
    metadata = read(directory)
    for step in metadata.index.steps(local_only=True):
        record = metadata.index.records[step]
        problems = directory.verify(record.prefix, record.files)
        if problems:
            raise ModelDirectoryError(
                f"the checkpoint at step {step} in {directory.path} failed verification: " + "; ".join(problems)
            )
    return metadata


def record_run(directory: ModelDirectory, run: RunRecord) -> None:
    """Point the model directory at the run its tracking journal now lives in (``sync``)."""
    if not exists(directory):
        return
    metadata = read(directory)
    if metadata.tracking != run:
        metadata.tracking = run
        write(directory, metadata, metadata.generation)
