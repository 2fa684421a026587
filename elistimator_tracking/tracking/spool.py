"""The durable record of tracking work for one store, kept in the model directory.

Every tracking operation is appended to ``journal.jsonl`` (with a sequence number)
before it is delivered; ``delivered`` holds the highest sequence number the store has
acknowledged. After a crash, a dead server or a closed process, the operations after
that number are replayed in order (what a crash left half-committed is settled first:
see ``settle`` and ``mlflow_tracker.py``). Replays are harmless: metrics carry their original
timestamps (MLflow drops exact duplicates), artifacts overwrite the same paths, and a
run is found again by its ``elistimator.run_key`` tag instead of being created twice.

Layout: ``<model_dir>/tracking/<store-id>/{store.json, journal.jsonl, delivered,
runs.json, outbox/}``, one folder per tracking URI.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .._faults import crash_point
from ..model_dir import write_json_atomic, write_text_atomic
from .base import TrackingWarning

SPOOL_DIR = "tracking"  # inside the model directory


def spool_path(spool_root: Path, tracking_uri: str) -> Path:
    digest = hashlib.sha256(tracking_uri.encode("utf-8")).hexdigest()[:12]
    return spool_root / f"store-{digest}"


def spools_in(spool_root: Path) -> Iterator[Spool]:
    """Every spool under ``spool_root`` (one per tracking URI ever used there)."""
    for store in sorted(spool_root.glob("store-*/store.json")):
        uri = json.loads(store.read_text(encoding="utf-8"))["tracking_uri"]
        yield Spool(spool_root, uri)


class Spool:
    """Journal, delivery mark, run ids and outbox of one tracking URI.

    One user at a time: every user (the tracker of a writing Elistimator, ``sync``) holds
    the model directory's writer lock (``writer_lock.py``), so a ``sync`` never replays a
    journal a running training is still writing.
    """

    def __init__(self, spool_root: Path, tracking_uri: str):
        self.tracking_uri = tracking_uri
        self.path = spool_path(spool_root, tracking_uri)
        self._lock = threading.Lock()
        self.path.mkdir(parents=True, exist_ok=True)
        store = self.path / "store.json"
        if not store.is_file():
            write_json_atomic(store, {"tracking_uri": tracking_uri})
        self._journal = self.path / "journal.jsonl"
        self._repair_torn_tail()
        entries = self._read_journal()
        self._delivered = self._read_delivered()
        self._next_seq = max([self._delivered] + [op["seq"] for op in entries]) + 1
        self._runs: dict[str, str | None] = self._read_runs()

    # -- the journal ------------------------------------------------------------------

    def append(self, op: dict[str, Any], durable: bool = False) -> dict[str, Any]:
        """Give ``op`` the next sequence number and write it to the journal (flushed; ``durable``:
        on disk before this returns, for work that must precede a commit of elistimator.json)."""
        with self._lock:
            op = {"seq": self._next_seq, **op}
            self._next_seq += 1
            crash_point("journal.append")
            with open(self._journal, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(op, separators=(",", ":")) + "\n")
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            crash_point("journal.appended")
        return op

    def settle(self, committed: Callable[[Mapping[str, Any]], bool]) -> int:
        """Decide, once, what became of pending work journaled before a commit of elistimator.json
        (operations with a ``commit`` clause, left by a process that died): keep those whose
        clause ``committed`` confirms (as plain operations) and drop the others. Returns how
        many were dropped."""
        with self._lock:
            entries, kept, dropped = self._read_journal(), [], 0
            for op in entries:
                clause = op.get("commit")
                if clause is not None and op["seq"] > self._delivered:
                    if not committed(clause):
                        dropped += 1
                        continue
                    op = {key: value for key, value in op.items() if key != "commit"}
                kept.append(op)
            if kept != entries:
                write_text_atomic(self._journal, "".join(json.dumps(op, separators=(",", ":")) + "\n" for op in kept))
        return dropped

    def pending(self) -> list[dict[str, Any]]:
        """The operations not yet acknowledged by the store, oldest first."""
        return [op for op in self._read_journal() if op["seq"] > self._delivered]

    @property
    def delivered(self) -> int:
        """The highest sequence number the store acknowledged (0: nothing yet)."""
        return self._delivered

    def mark_delivered(self, seq: int) -> None:
        with self._lock:
            if seq > self._delivered:
                self._delivered = seq
                write_text_atomic(self.path / "delivered", f"{seq}\n")

    def compact(self) -> None:
        """Drop the journal once everything in it was delivered."""
        with self._lock:
            if self._delivered >= self._next_seq - 1 and self._journal.exists():
                self._journal.unlink()

    def _read_journal(self) -> list[dict[str, Any]]:
        if not self._journal.exists():
            return []
        entries = []
        for number, line in enumerate(self._journal.read_text(encoding="utf-8").splitlines(), 1):
            try:
                entry = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:
                entry = None
                warnings.warn(f"{self._journal} line {number} is damaged and skipped", TrackingWarning, stacklevel=2)
            if isinstance(entry, dict) and isinstance(entry.get("seq"), int):
                entries.append(entry)
        return entries

    def _repair_torn_tail(self) -> None:
        """A crash mid-append can leave a partial last line: cut it off (it was never acted on)."""
        if not self._journal.exists():
            return
        data = self._journal.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(self._journal, "r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)

    def _read_delivered(self) -> int:
        path = self.path / "delivered"
        return int(path.read_text().strip()) if path.is_file() else 0

    # -- runs -------------------------------------------------------------------------

    def forget_runs(self) -> None:
        """Drop the run ids: they belong to another store than the one the journal goes to now."""
        with self._lock:
            self._runs = {}
            write_json_atomic(self.path / "runs.json", self._runs)

    def run_id(self, key: str) -> str | None:
        return self._runs.get(key)

    def set_run(self, key: str, run_id: str) -> None:
        with self._lock:
            self._runs[key] = run_id
            write_json_atomic(self.path / "runs.json", self._runs)

    def _read_runs(self) -> dict[str, str | None]:
        path = self.path / "runs.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    # -- the outbox: files waiting for upload -------------------------------------------

    def outbox(self, name: str) -> Path:
        """A new empty directory ``outbox/<name>-<random>``, unique even when ``name`` repeats."""
        directory = self.path / "outbox" / f"{name}-{uuid.uuid4().hex[:12]}"
        directory.mkdir(parents=True)
        return directory

    def outbox_path(self, relative: str) -> Path:
        return self.path / relative

    def relative(self, directory: Path) -> str:
        return directory.relative_to(self.path).as_posix()

    def remove_outbox(self, relative: str) -> None:
        shutil.rmtree(self.path / relative, ignore_errors=True)

    def sweep_outbox(self) -> None:
        """Remove outbox directories no pending operation refers to (left by a crash mid-staging)."""
        referenced = {op.get("directory") for op in self.pending()}
        for directory in (self.path / "outbox").glob("*"):
            if self.relative(directory) not in referenced:
                shutil.rmtree(directory, ignore_errors=True)
