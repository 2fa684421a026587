"""One writer per model directory: an exclusive OS lock, held while an Elistimator writes there.

The lock is ``flock`` on ``<model_dir>/.writer.lock``. The kernel releases it when its
holder closes the file or dies (SIGKILL and power cuts included), so a crashed trainer
never blocks the next one. ``flock`` locks belong to an open file, so two Elistimators
in one process exclude each other as two processes do. The file records the holder's
PID, host and start time for the error a second writer gets. Readers (``from_disk`` to
predict or evaluate) take no lock; ``sync`` takes it while it delivers the journal.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import IO

from .errors import ModelDirectoryBusy

LOCK_FILE = ".writer.lock"


class WriterLock:
    """The writer lock of the model directory at ``path`` (taken by ``acquire``, idempotent)."""

    def __init__(self, path: Path):
        self.path = path
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self, who: str = "an Elistimator") -> None:
        """Become the one writer, or raise ``ModelDirectoryBusy`` naming the holder."""
        if self._file is not None:
            return
        handle = open(self.path / LOCK_FILE, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = _described(handle.read())
            handle.close()
            raise ModelDirectoryBusy(
                f"model directory {str(self.path)!r} is being written by another Elistimator ({holder}); "
                f"one writer at a time: close that one first, or load this directory with "
                f"Elistimator.from_disk to predict or evaluate (readers need no lock)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "who": who,
                    "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                }
            )
        )
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _described(text: str) -> str:
    try:
        holder = json.loads(text)
        return f"PID {holder['pid']} on {holder['host']}, {holder.get('who', 'a writer')} since {holder['since']}"
    except (ValueError, KeyError, TypeError):
        return "PID unknown: the holder is just starting"
