"""One writer per model directory: an exclusive OS lock, held while an Elistimator writes there.

The lock is ``flock`` on ``<model_dir>/.writer.lock``. The kernel releases it when its
holder closes the file or dies (SIGKILL and power cuts included), so a crashed trainer
never blocks the next one. ``flock`` locks belong to an open file, so two Elistimators
in one process exclude each other as two processes do. The file records the holder's
PID, host and start time for the error a second writer gets. Readers (``from_disk`` to
predict or evaluate) take no lock; ``sync`` takes it while it delivers the journal.

The file is opened without following a link (a ``.writer.lock`` planted as a symlink or a
hard link to the user's file is refused, never truncated). A forked child does not keep the
lock: a descriptor inherited through ``fork`` shares the parent's lock, so a child that
outlived a killed parent would hold it for good. After a fork the child closes its copies
(``os.register_at_fork``); closing one copy of a shared descriptor never releases the
parent's lock (only ``LOCK_UN`` would, which the child never calls). Close-on-exec covers
children that ``exec``.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import time
import weakref
from pathlib import Path

from .errors import ModelDirectoryBusy, ModelDirectoryError
from .model_dir import open_for_write

LOCK_FILE = ".writer.lock"

_held: weakref.WeakSet[WriterLock] = weakref.WeakSet()  # the locks this process holds


class WriterLock:
    """The writer lock of the model directory at ``path`` (taken by ``acquire``, idempotent)."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, who: str = "an Elistimator") -> None:
        """Become the one writer, or raise ``ModelDirectoryBusy`` naming the holder
        (``ModelDirectoryError`` for a lock file that is a link, a directory, or not writable)."""
        if self._fd is not None:
            return
        lock = self.path / LOCK_FILE
        fd = open_for_write(self.path, lock, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK)
        try:
            _require_own_file(fd, lock)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise ModelDirectoryBusy(
                    f"model directory {str(self.path)!r} is being written by another Elistimator "
                    f"({_described(os.pread(fd, 4096, 0))}); one writer at a time: close that one first, "
                    f"or load this directory with Elistimator.from_disk to predict or evaluate (readers need no lock)"
                ) from None
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "who": who}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({**holder, "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        _held.add(self)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            _held.discard(self)

    def _forget_inherited(self) -> None:
        """In a forked child: close the copy of the parent's descriptor (the parent keeps its lock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _require_own_file(fd: int, lock: Path) -> None:
    """Refuse a lock file that is not a regular file of its own (a FIFO, a device, a hard link to
    another file): truncating it would write somewhere else."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise ModelDirectoryError(f"{lock} is not a regular file; remove it (the lock file is made anew)")
    if info.st_nlink > 1:
        raise ModelDirectoryError(
            f"{lock} is a hard link shared with {info.st_nlink - 1} other name(s); Elistimator truncates "
            "the lock file, so it must be a file of its own: remove it (it is made anew)"
        )


def _after_fork_in_child() -> None:
    for lock in list(_held):
        lock._forget_inherited()
    _held.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _described(raw: bytes) -> str:
    try:
        holder = json.loads(raw.decode("utf-8"))
        return f"PID {holder['pid']} on {holder['host']}, {holder.get('who', 'a writer')} since {holder['since']}"
    except (ValueError, KeyError, TypeError):
        return "PID unknown: the holder is just starting"
