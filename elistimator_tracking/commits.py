"""Writing ``elistimator.json`` for a live model, and the journal-then-commit step.

A validation, a checkpoint or a branch is announced to the listeners first (they journal
what they will send), then committed to ``elistimator.json``, then the listeners hear
whether the commit happened (``on_commit``) and deliver only what it holds. A crash in
between leaves journaled work the file does not hold, which the next run (or ``sync``)
drops; after the commit, work it delivers (docs/robustness.md). The crash points
``<name>.journaled`` and ``<name>.committed`` name the two sides.
"""

from __future__ import annotations

from collections.abc import Callable

from . import metadata as metadata_file
from ._faults import crash_point
from .listeners import Listeners
from .metadata import Metadata
from .model_dir import ModelDirectory


class Commits:
    """``elistimator.json`` of ``directory``, as ``metadata()`` describes the model now."""

    def __init__(self, directory: ModelDirectory, listeners: Listeners, metadata: Callable[[], Metadata]):
        self._directory, self._listeners, self.metadata = directory, listeners, metadata

    def write(self) -> None:
        metadata_file.write(self._directory, self.metadata())

    def commit(self, name: str, announce: Callable[[], None]) -> None:
        """``announce()`` a validation, checkpoint or branch to the listeners, then commit it."""
        announce()
        crash_point(f"{name}.journaled")
        committed = False
        try:
            self.write()
            committed = True
            crash_point(f"{name}.committed")
        finally:
            self._listeners.on_commit(committed)
