"""The durable record of tracking work for one store, kept in the model directory.

Every tracking operation is appended to ``journal.jsonl`` (``ops.py``: one versioned JSON line,
with a sequence number) before it is delivered; ``delivered`` holds the highest sequence number
the store has acknowledged; ``runs.json`` the run id of each run key. After a crash, a dead
server or a closed process, the operations after the mark are replayed in order. Replays are
harmless: metrics carry their original timestamps (MLflow keeps one point per timestamp),
artifacts overwrite the same paths, and a run or a logged model is found again by its key tag.

Faults never block and never lose what can be kept, and always name the file:

- a line that cannot be understood (not JSON or not UTF-8, an unknown operation or format, a
  field of the wrong shape) moves to ``quarantine.jsonl`` beside the journal, with one warning
  naming the journal, the line and why; the rest is delivered;
- a torn last line (a crash mid-append) is cut off: it was never acted on;
- a damaged ``delivered`` mark is rebuilt as 0 (everything in the journal is replayed, which is
  harmless), a damaged ``runs.json`` as empty (run ids are found again by their run key in the
  store); each with a warning naming the file;
- a link anywhere in the spool's own folders is refused (``ModelDirectoryError``): nothing is
  written, read or removed through a link, so a planted link never leads outside the directory.

Layout: ``<model_dir>/tracking/<store-id>/{store.json, journal.jsonl, delivered, runs.json,
quarantine.jsonl, outbox/}``, one folder per tracking URI (``spool_path``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from ..._faults import crash_point
from ...errors import ModelDirectoryError, TrackingError, TrackingWarning
from ...model_dir import refuse_links, remove_tree, write_json_atomic, write_text_atomic
from .ops import Op, Undecodable, decode

SPOOL_DIR = "tracking"  # inside the model directory
JOURNAL = "journal.jsonl"
QUARANTINE = "quarantine.jsonl"
STORE_FILE = "store.json"


def spool_path(spool_root: Path, tracking_uri: str) -> Path:
    """The folder of one tracking URI's spool (its name never changes: earlier journals are found)."""
    digest = hashlib.sha256(tracking_uri.encode("utf-8")).hexdigest()[:12]
    return spool_root / f"store-{digest}"


def spools_in(spool_root: Path, known_uris: tuple[str, ...] = ()) -> Iterator[Spool]:
    """Every spool under ``spool_root`` (one per tracking URI ever used there). A damaged
    ``store.json`` is rebuilt from ``known_uris`` (the stores the model directory names) when one of
    them owns the folder; otherwise a ``TrackingError`` names the file and what to do."""
    refuse_links(spool_root.parent, spool_root)
    for folder in sorted(spool_root.glob("store-*")):
        refuse_links(spool_root.parent, folder)
        if not (folder / STORE_FILE).exists():
            continue
        yield Spool(spool_root, _store_uri(folder, known_uris))


def _store_uri(folder: Path, known_uris: tuple[str, ...]) -> str:
    path = folder / STORE_FILE
    try:
        uri = json.loads(path.read_text(encoding="utf-8"))["tracking_uri"]
        if isinstance(uri, str) and spool_path(folder.parent, uri) == folder:
            return uri
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        pass
    for uri in known_uris:
        if spool_path(folder.parent, uri) == folder:
            warnings.warn(
                f"{path} is damaged; rebuilt from the model directory's record of its store ({uri})",
                TrackingWarning,
                stacklevel=3,
            )
            write_json_atomic(path, {"tracking_uri": uri})
            return uri
    raise TrackingError(
        f"{path} is damaged and no store the model directory records owns {folder.name}: deliver it "
        "with elistimator sync <model_dir> --tracking-uri <the store it was tracked to> "
        "(the folder's name is the start of the sha256 of that URI)"
    )


class Spool:
    """Journal, delivery mark, run ids, outbox and quarantine of one tracking URI.

    One user at a time: every user (the tracker of a writing Elistimator, ``sync``) holds the model
    directory's writer lock (``writer_lock.py``), so a ``sync`` never replays a journal a running
    training is still writing. Within that user, the training thread appends and the delivery
    thread marks; a lock keeps their writes apart.
    """

    def __init__(self, spool_root: Path, tracking_uri: str):
        self.tracking_uri = tracking_uri
        self.path = spool_path(spool_root, tracking_uri)
        self._root = spool_root.parent  # the model directory: nothing here may link out of it
        self._lock = threading.Lock()
        self._handle: IO[str] | None = None
        self._root.mkdir(parents=True, exist_ok=True)
        for folder in (spool_root, self.path, self.path / "outbox"):
            refuse_links(self._root, folder)
            folder.mkdir(exist_ok=True)
        for name in (STORE_FILE, JOURNAL, "delivered", "runs.json", QUARANTINE):
            refuse_links(self._root, self.path / name)
        store = self.path / STORE_FILE
        if not store.exists():
            write_json_atomic(store, {"tracking_uri": tracking_uri})
        self._journal = self.path / JOURNAL
        self.quarantined: list[str] = []  # why lines were moved to the quarantine file, this session
        entries, highest = self._open_journal()
        self._delivered = self._read_delivered()
        self._next_seq = max([self._delivered, highest, *(op.seq for op in entries)]) + 1
        self._runs: dict[str, str] = self._read_runs()

    # -- the journal ------------------------------------------------------------------

    def append(self, op: Op, durable: bool = False) -> Op:
        """Give ``op`` the next sequence number and write it to the journal (flushed; ``durable``:
        on disk before this returns, for work that must precede a commit of elistimator.json)."""
        with self._lock:
            op = op.numbered(self._next_seq, op.commit)
            self._next_seq += 1
            crash_point("journal.append")
            handle = self._appending()
            handle.write(op.encode() + "\n")
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
            crash_point("journal.appended")
        return op

    def settle(self, committed: Callable[[Mapping[str, Any]], bool]) -> int:
        """Decide, once, what became of pending work journaled before a commit of elistimator.json
        (operations with a ``commit`` clause, left by a process that died): keep those whose clause
        ``committed`` confirms (as plain operations) and drop the others. Returns how many were
        dropped.

        A commit writes the whole model as it is, so one confirmed clause confirms every clause
        journaled before it: a branch whose dropped validation came back with the same values (a
        deterministic training validating that step again) reads as uncommitted by content alone."""
        with self._lock:
            entries, kept, dropped = self._read_journal(), [], 0
            held = {
                op.seq
                for op in entries
                if op.commit is not None and op.seq > self._delivered and committed(op.commit.to_json())
            }
            newest_held = max(held, default=0)
            for op in entries:
                if op.commit is not None and op.seq > self._delivered:
                    if op.seq not in held and op.seq > newest_held:
                        dropped += 1
                        continue
                    op = op.settled()
                kept.append(op)
            if kept != entries:
                self._rewrite(kept)
        return dropped

    def pending(self) -> list[Op]:
        """The operations not yet acknowledged by the store, oldest first."""
        return [op for op in self._read_journal() if op.seq > self._delivered]

    @property
    def delivered(self) -> int:
        """The highest sequence number the store acknowledged (0: nothing yet)."""
        return self._delivered

    def mark_delivered(self, seq: int) -> None:
        with self._lock:
            if seq > self._delivered:
                write_text_atomic(self.path / "delivered", f"{seq}\n")
                self._delivered = seq

    def compact(self) -> None:
        """Drop the journal once everything in it was delivered."""
        with self._lock:
            if self._delivered >= self._next_seq - 1 and self._journal.exists():
                self._close_handle()
                self._journal.unlink()

    def close(self) -> None:
        with self._lock:
            self._close_handle()

    def _appending(self) -> IO[str]:
        if self._handle is None:
            fd = os.open(self._journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            self._handle = os.fdopen(fd, "a", encoding="utf-8")
        return self._handle

    def _close_handle(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _rewrite(self, entries: list[Op]) -> None:
        self._close_handle()
        write_text_atomic(self._journal, "".join(op.encode() + "\n" for op in entries))

    def _open_journal(self) -> tuple[list[Op], int]:
        """Read the journal at opening: cut a torn tail, move what cannot be understood to the
        quarantine file (one warning), keep one copy of a line written twice. Returns the operations
        and the highest sequence number any line held (numbering goes on above the quarantined)."""
        refuse_links(self._root, self._journal)
        if not self._journal.exists():
            return [], 0
        data = self._journal.read_bytes()
        if data and not data.endswith(b"\n"):  # a crash mid-append: the partial line was never acted on
            data = data[: data.rfind(b"\n") + 1]
            with open(self._journal, "r+b") as handle:
                handle.truncate(len(data))
        entries, damaged, seen = [], [], set()
        for number, raw in enumerate(data.split(b"\n")[:-1] if data else [], 1):
            if not raw.strip():
                continue
            try:
                op = decode(_text(raw))
            except Undecodable as why:
                damaged.append((number, raw, str(why)))
                continue
            if op.seq not in seen:
                seen.add(op.seq)
                entries.append(op)
        highest = 0
        if damaged:
            self._quarantine(damaged)
            write_text_atomic(self._journal, "".join(op.encode() + "\n" for op in entries))
            highest = max((int(m.group(1)) for _, raw, _ in damaged if (m := _SEQ.search(raw))), default=0)
        return entries, highest

    def _read_journal(self) -> list[Op]:
        if not self._journal.exists():
            return []
        entries, seen = [], set()
        for raw in self._journal.read_bytes().split(b"\n"):
            if raw.strip():
                try:
                    op = decode(_text(raw))
                except Undecodable:
                    continue  # quarantined at opening; a line written since is this process's own
                if op.seq not in seen:
                    seen.add(op.seq)
                    entries.append(op)
        return entries

    def _quarantine(self, damaged: list[tuple[int, bytes, str]]) -> None:
        target = self.path / QUARANTINE
        refuse_links(self._root, target)
        moved = int(time.time() * 1000)
        with open(target, "a", encoding="utf-8") as handle:
            for number, raw, why in damaged:
                handle.write(
                    json.dumps(
                        {
                            "journal_line": number,
                            "why": why,
                            "moved_ms": moved,
                            "line": raw.decode("utf-8", errors="backslashreplace"),
                        }
                    )
                    + "\n"
                )
            handle.flush()
            os.fsync(handle.fileno())
        self.quarantined += [f"line {number}: {why}" for number, _, why in damaged]
        lines = "; ".join(f"line {number}: {why}" for number, _, why in damaged[:5])
        more = f" (and {len(damaged) - 5} more)" if len(damaged) > 5 else ""
        warnings.warn(
            f"{self._journal}: {len(damaged)} line(s) could not be understood and were moved to {target}, "
            f"the rest is delivered: {lines}{more}",
            TrackingWarning,
            stacklevel=4,
        )

    def _read_delivered(self) -> int:
        path = self.path / "delivered"
        refuse_links(self._root, path)
        if not path.exists():
            return 0
        try:
            return max(0, int(path.read_text(encoding="utf-8").strip()))
        except (ValueError, UnicodeDecodeError):
            warnings.warn(
                f"{path} is damaged; rebuilt as 0: every operation of the journal is sent again "
                "(a replay never duplicates what already arrived)",
                TrackingWarning,
                stacklevel=4,
            )
            write_text_atomic(path, "0\n")
            return 0

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
            if self._runs.get(key) != run_id:
                self._runs[key] = run_id
                write_json_atomic(self.path / "runs.json", self._runs)

    def _read_runs(self) -> dict[str, str]:
        path = self.path / "runs.json"
        refuse_links(self._root, path)
        if not path.exists():
            return {}
        try:
            runs = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(runs, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in runs.items()):
                return runs
        except (ValueError, UnicodeDecodeError):
            pass
        warnings.warn(
            f"{path} is damaged; rebuilt: each run is found again in the store by its run key",
            TrackingWarning,
            stacklevel=4,
        )
        write_json_atomic(path, {})
        return {}

    # -- the outbox: files waiting for upload -------------------------------------------

    def outbox(self, name: str) -> Path:
        """A new empty directory ``outbox/<name>-<random>``, unique even when ``name`` repeats."""
        refuse_links(self._root, self.path / "outbox")
        directory = self.path / "outbox" / f"{name}-{uuid.uuid4().hex[:12]}"
        directory.mkdir()
        return directory

    def outbox_path(self, relative: str) -> Path:
        """The outbox folder an operation names (``ModelDirectoryError`` if it leads elsewhere)."""
        path = self.path / relative
        if path.parent != self.path / "outbox":
            raise ModelDirectoryError(
                f"{self._journal} names an outbox folder {relative!r} outside {self.path / 'outbox'}"
            )
        refuse_links(self._root, path)
        return path

    def relative(self, directory: Path) -> str:
        return directory.relative_to(self.path).as_posix()

    def remove_outbox(self, relative: str) -> None:
        remove_tree(self._root, self.outbox_path(relative))

    def sweep_outbox(self) -> None:
        """Remove outbox directories no pending operation refers to (left by a crash mid-staging)."""
        referenced = {getattr(op, "directory", None) for op in self.pending()}
        outbox = self.path / "outbox"
        refuse_links(self._root, outbox)
        for directory in outbox.iterdir():
            if self.relative(directory) not in referenced:
                remove_tree(self._root, directory)


_SEQ = re.compile(rb'"seq"\s*:\s*(\d+)')


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Undecodable(f"its bytes are not UTF-8 text ({error.reason} at byte {error.start})") from None
