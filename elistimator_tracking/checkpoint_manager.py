"""Saving, pruning, verifying and restoring checkpoints, and the branch a restore starts.

Policy (which checkpoint is best or latest) is ``checkpoints.py``; where a checkpoint's
files come from is storage: the model directory while they are on local disk, else a
``CheckpointStore`` (a run's artifacts) the manager is given.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from . import metadata as metadata_file
from ._faults import crash_point
from .checkpoints import CheckpointIndex, CheckpointRecord, Selection, select_step
from .errors import CheckpointNotFoundError, CheckpointsDroppedWarning, ModelDirectoryError
from .listeners import SavedCheckpoint
from .loops import Loops
from .metadata import Metadata
from .model_dir import ModelDirectory

PathLike = str | os.PathLike


class CheckpointStore(Protocol):
    """Where checkpoints pruned from local disk can still be found."""

    label: str  # what it is, for messages: e.g. "run 3f2a..."

    def fetch(self, step: int) -> Path:
        """A local, verified model directory holding the checkpoint at ``step``."""


class CheckpointManager:
    """The checkpoints of one model directory: the index, their files, and restoring them.

    ``store`` returns the ``CheckpointStore`` of the run this model directory tracks to,
    or None (not tracked); it is asked only when a pruned checkpoint is needed.
    """

    def __init__(
        self,
        directory: ModelDirectory,
        index: CheckpointIndex,
        max_to_keep: int | None,
        store: Callable[[], CheckpointStore | None],
    ):
        self.directory, self.index, self.max_to_keep = directory, index, max_to_keep
        self._store = store
        self._branch_point: int | None = None  # a restored step, until training moves on from it

    def describe(self) -> dict[int, dict[str, Any]]:
        """``{step: {'file': path prefix, 'metrics': {...}, 'local': bool, 'stored': bool}}``, by step."""
        return {
            step: {
                "file": self.file_of(step),
                "metrics": self.index.metrics(step),
                "local": record.local,
                "stored": record.stored,
            }
            for step, record in sorted(self.index.records.items())
        }

    def file_of(self, step: int) -> str:
        return str(self.directory.path / self.index.records[step].prefix)

    # -- saving -------------------------------------------------------------------------

    def save(self, loops: Loops, step: int, uncommit: Callable[[], None], commit: Callable[[], None]) -> None:
        """Save the session's variables as the checkpoint at ``step`` and ``commit`` it to the index
        (which announces it and writes the metadata). Files of pruned checkpoints stay until
        ``remove_unreferenced_files``, so listeners can still link them."""
        prefix = self.directory.checkpoint_prefix(step)
        target = self.directory.checkpoint_target(prefix)  # no link on the way, none where files go
        if self.index.records.pop(step, None) is not None:
            uncommit()  # its files are about to be overwritten: uncommit them first
        loops.model.save(loops.session, str(target))
        self.index.add(CheckpointRecord(step, prefix, self.directory.checksums(prefix)))
        crash_point("save.files")
        self._prune()
        commit()  # the commit point: from here on the checkpoint exists

    def _prune(self) -> None:
        """Mark all but the newest ``max_to_keep`` checkpoints as no longer on local disk."""
        local = self.index.steps(local_only=True)
        if self.max_to_keep is not None:
            for step in local[: -self.max_to_keep]:
                self.index.records[step].local = False

    def remove_unreferenced_files(self) -> None:
        """Make the checkpoint directory match the committed index: delete files no local entry
        owns, and list the local ones in TensorFlow's ``checkpoint`` file."""
        local = [self.index.records[s].prefix for s in self.index.steps(local_only=True)]
        self.directory.remove_unreferenced(keep=local)
        self.directory.write_checkpoint_state(local)

    def saved(self, step: int, metadata: Metadata) -> SavedCheckpoint:
        """The committed checkpoint at ``step`` as listeners and the registry see it."""
        record = self.index.records[step]
        exported = metadata.export(step)

        def write(destination: Path, files: bool = True) -> None:
            if files:
                ModelDirectory(self.holder(record)).export_checkpoint(record.prefix, record.files, destination)
            metadata_file.write(ModelDirectory(destination), exported)

        return SavedCheckpoint(step, self.index.metrics(step), self.index, write)

    # -- restoring ------------------------------------------------------------------------

    def select(self, checkpoint: Selection, metric: str = "loss", mode: str = "auto") -> int:
        return select_step(self.index, checkpoint, metric, mode)

    def restore(self, loops: Loops, path_prefix: PathLike) -> int:
        """Restore the checkpoint at ``path_prefix`` (absolute, or relative to the model directory);
        an indexed one is verified (or fetched from the run when pruned). Returns its step."""
        prefix = self._absolute(Path(path_prefix))
        record = self._record_at(prefix)
        if record is not None:
            return self.restore_step(loops, record.step)
        if not Path(f"{prefix}.index").is_file():
            known = [entry["file"] for entry in self.describe().values() if entry["local"]]
            raise CheckpointNotFoundError(
                f"no checkpoint at {str(prefix)!r} (no {prefix.name}.index); "
                f"checkpoints on local disk: {known or 'none'}"
            )
        return self._restored(loops.restore(str(prefix)))

    def restore_step(self, loops: Loops, step: int, verified: bool = False) -> int:
        """Restore the indexed checkpoint at ``step`` (``verified``: its files were just checked)."""
        record = self.index.records[step]
        holder = ModelDirectory(self.holder(record))
        if record.local and not verified:
            self.verify(record)
        return self._restored(loops.restore(str(holder.resolve(record.prefix))))

    def _restored(self, step: int) -> int:
        self._branch_point = step
        return step

    def verify(self, record: CheckpointRecord) -> None:
        problems = self.directory.verify(record.prefix, record.files)
        if problems:
            raise ModelDirectoryError(
                f"the checkpoint at step {record.step} ({record.prefix}) is damaged: " + "; ".join(problems)
            )

    def holder(self, record: CheckpointRecord) -> Path:
        """The model directory when the checkpoint is on local disk, else a verified copy of it
        from the run that logged it (checked against the checksums this directory recorded)."""
        if record.local:
            return self.directory.path
        store = self._store()
        if store is None:
            raise CheckpointNotFoundError(
                f"the checkpoint at step {record.step} is no longer on local disk (pruned by "
                f"max_to_keep={self.max_to_keep}) and no MLflow run holds it (this model was not tracked); "
                "keep more with train_saver_args={'max_to_keep': N}"
            )
        fetched = store.fetch(record.step)
        downloaded = metadata_file.read(ModelDirectory(fetched)).index.records.get(record.step)
        if downloaded is None or (record.files and downloaded.files != record.files):
            raise ModelDirectoryError(
                f"the checkpoint at step {record.step} in {store.label} is not the one this "
                "model directory recorded (its files or checksums differ)"
            )
        return fetched

    def _absolute(self, prefix: Path) -> Path:
        """A relative prefix is relative to the model directory (or, failing that, to the working
        directory, when a checkpoint is there)."""
        if prefix.is_absolute():
            return prefix
        inside = self.directory.path / prefix
        if (
            self._record_at(inside) is None
            and not Path(f"{inside}.index").is_file()
            and Path(f"{prefix}.index").is_file()
        ):
            return prefix.absolute()
        return inside

    def _record_at(self, prefix: Path) -> CheckpointRecord | None:
        """The indexed checkpoint whose files in the model directory have this path prefix."""
        for record in self.index.records.values():
            if self.directory.resolve(record.prefix) == prefix.resolve():
                return record
        return None

    # -- branches -------------------------------------------------------------------------

    def start_branch(self, commit: Callable[[int, dict[int, dict[str, float]]], None]) -> list[int]:
        """Training goes on from a restored step: later checkpoints and validations belonged to
        the abandoned run, so they are dropped (with a warning) and ``commit(step, validations
        dropped)`` announces and writes that. Returns the dropped checkpoint steps."""
        if self._branch_point is None:
            return []
        step, self._branch_point = self._branch_point, None
        validations = {s: metrics for s, metrics in self.index.validations.items() if s > step}
        dropped = self.index.drop_after(step)
        if not dropped and not validations:
            return []
        commit(step, validations)
        self.remove_unreferenced_files()
        later = (
            f"the later checkpoints {dropped} and validations"
            if dropped
            else f"the later validations at steps {sorted(validations)}"
        )
        warnings.warn(
            f"training continues from the restored step {step}: {later} of the abandoned run are dropped",
            CheckpointsDroppedWarning,
            stacklevel=4,
        )
        return dropped
