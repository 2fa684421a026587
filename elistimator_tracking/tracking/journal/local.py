"""What the model directory holds, as the journal asks it: has ``elistimator.json`` committed what
held work belonged to, and can a checkpoint whose staged files are gone be written again?

Read from disk when asked (the committed state, which is what matters after a crash), never
from a live Elistimator.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ... import metadata as metadata_file
from ...checkpoints import CheckpointIndex
from ...model_dir import ModelDirectory
from ..logged_models import checkpoint_key


class LocalCheckpoints:
    """The checkpoints of the model directory at ``path``, for the run key ``run_key``."""

    def __init__(self, path: Path, run_key: str | None):
        self.directory, self.run_key = ModelDirectory(path), run_key

    def index(self) -> CheckpointIndex:
        return metadata_file.read(self.directory).index if metadata_file.exists(self.directory) else CheckpointIndex()

    def holds(self, clause: Mapping[str, Any]) -> bool:
        """Whether ``elistimator.json`` holds what a held operation's commit ``clause`` names."""
        return self.index().holds(clause)

    def remake(self, step: int, key: str, destination: Path) -> bool:
        """Write the one-checkpoint model directory of checkpoint ``key`` at ``step`` into
        ``destination`` (an empty folder); False when the model directory no longer holds that
        checkpoint's files, intact."""
        if not metadata_file.exists(self.directory) or self.run_key is None:
            return False
        metadata = metadata_file.read(self.directory)
        record = metadata.index.records.get(step)
        if record is None or not record.local or checkpoint_key(self.run_key, step, record.files) != key:
            return False
        if self.directory.verify(record.prefix, record.files):
            return False
        self.directory.export_checkpoint(record.prefix, record.files, destination)
        metadata_file.write(ModelDirectory(destination), metadata.export(step))
        return True

    def not_stored(self, step: int) -> None:
        """Record that the tracking store lacks the checkpoint at ``step`` and never will get it (its
        files are gone here too): restoring it says so, and ``sync`` stops looking for it."""
        metadata = metadata_file.read(self.directory)
        record = metadata.index.records.get(step)
        if record is not None and record.stored:
            record.stored = False
            metadata_file.write(self.directory, metadata, metadata.generation)  # bookkeeping: no new generation
