"""Writing ``elistimator.json`` for a live model, and the journal-then-commit step.

A validation, a checkpoint or a branch is announced to the listeners first (they journal
what they will send), then committed to ``elistimator.json``, then the listeners hear
whether the commit happened (``on_commit``) and deliver only what it holds. A crash in
between leaves journaled work the file does not hold, which the next run (or ``sync``)
drops; after the commit, work it delivers (docs/robustness.md). The crash points
``<name>.journaled`` and ``<name>.committed`` name the two sides.

**Generations.** Every write of ``elistimator.json`` records a new ``generation`` (a random
id, ``metadata.write``). A writer knows the generation of what it loaded (``from_disk``, a
model function over an existing directory) and of what it last wrote. When it takes the
writer lock (``Commits.acquire``: at the first ``setup()``, ``save_ckpt()`` or commit) it
checks that the file still holds that generation; if another writer committed in between,
its view of the directory is stale, and writing it would drop what the other one committed:
``ModelDirectoryChanged``, and nothing is written. While it holds the lock nobody else
writes, so the check is needed once per acquisition.

What to build on it (the estimator front end's "a second Estimator on the same model_dir
goes on from what the other committed"): catch ``ModelDirectoryChanged`` (or compare
``metadata.generation(directory)`` with ``Commits.generation`` before writing) and load
the directory again; ``ModelDirectoryChanged.found`` is the generation now on disk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import metadata as metadata_file
from ._faults import crash_point
from .checkpoints import CheckpointIndex
from .errors import ModelDirectoryChanged
from .listeners import Listeners
from .metadata import METADATA_FILE, Metadata
from .model_dir import ModelDirectory
from .writer_lock import WriterLock


class Commits:
    """``elistimator.json`` of ``directory``, as ``metadata()`` describes the model now.

    ``writer`` is the directory's lock; ``generation`` the one this model was loaded at (None
    for a new model, which owns its directory from the start); ``index`` the checkpoint index
    this writer holds (for the message when the directory changed under it).
    """

    def __init__(
        self,
        directory: ModelDirectory,
        listeners: Listeners,
        metadata: Callable[[], Metadata],
        writer: WriterLock,
        generation: str | None,
        index: CheckpointIndex,
    ):
        self._directory, self._listeners, self.metadata = directory, listeners, metadata
        self._writer, self.generation, self._index = writer, generation, index
        self._written: dict[str, Any] | None = None  # what this writer last wrote (without its generation)

    def acquire(self) -> None:
        """Take the writer lock (idempotent), then check that nobody committed since this model was
        loaded or last written: ``ModelDirectoryChanged`` (and the lock released) if someone did."""
        if self._writer.held:
            return
        self._writer.acquire()
        try:
            self._directory.writable(METADATA_FILE)
            found = metadata_file.generation(self._directory)
            if found != self.generation:
                raise self._changed(found)
        except BaseException:
            self._writer.release()
            raise

    def write(self) -> None:
        """Write the model as it is now, as a new generation; nothing when that is what this writer
        wrote last, and the same generation when only the run's record changed (closing records the
        run's id and status: no model another writer loaded goes stale by it)."""
        self.acquire()
        metadata = self.metadata()
        data = metadata.to_json()
        if data == self._written:
            return
        same_model = self._written is not None and _model_of(data) == _model_of(self._written)
        self.generation = metadata_file.write(self._directory, metadata, self.generation if same_model else None)
        self._written = data

    def commit(self, name: str, announce: Callable[[], None]) -> None:
        """``announce()`` a validation, checkpoint or branch to the listeners, then commit it."""
        self.acquire()  # before the listeners journal anything
        announce()
        crash_point(f"{name}.journaled")
        committed = False
        try:
            self.write()
            committed = True
            crash_point(f"{name}.committed")
        finally:
            self._listeners.on_commit(committed)

    def _changed(self, found: str | None) -> ModelDirectoryChanged:
        path = str(self._directory.path)
        ours = self._index.steps()
        if metadata_file.exists(self._directory):
            now = metadata_file.read(self._directory)
            theirs, step = now.index.steps(), now.global_step
            what = f"it now holds checkpoints at steps {theirs} (global step {step}); this Elistimator knows {ours}" + (
                f": steps {sorted(set(theirs) - set(ours))} are new" if set(theirs) - set(ours) else ""
            )
        else:
            what = f"its {METADATA_FILE} is gone; this Elistimator knows checkpoints at steps {ours}"
        return ModelDirectoryChanged(
            f"model directory {path!r} changed since this Elistimator loaded it: another writer committed "
            f"to it ({what}). Writing now would drop what that writer committed, so nothing was written: "
            f"load it again with Elistimator.from_disk({path!r}) and go on from there",
            path=path,
            expected=self.generation,
            found=found,
        )


def _model_of(data: dict[str, Any]) -> dict[str, Any]:
    """What of ``elistimator.json`` describes the model (all but the run's record)."""
    return {key: value for key, value in data.items() if key != "tracking"}
