"""The delivery thread: journaled operations go to the store in order, and the thread never dies.

It takes the queue's head (consecutive metric points of one run travel as one batch, and while
training a batch may linger a moment to gather more: one store call instead of many), hands it
to ``Delivery``, and marks it delivered in the spool only after the store answered. A failure
worth retrying pauses it (backing off up to ``max_backoff``); while it pauses after a refused
connection it probes the store's address twice a second and tries again as soon as the store
listens (``store_probe``), so delivery resumes within about a second of the store coming back; a
waiter (``close()``, ``sync``) cuts any pause short.

Nothing escapes the thread: an error of the store, of the disk (``OSError``: disk full while
marking) or of this code is recorded (``fault``, ``last_error``), warned about once, and retried;
waiters hear of a disk fault at once instead of waiting out their timeout.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import requests
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import SQLAlchemyError

from ..._faults import crash_point
from ...errors import TrackingWarning
from ..http_limits import bounded, quiet
from ..store_uri import is_database, network_address, unreachable
from .delivery import (
    ITEM_REFUSALS,
    LOGIN_REFUSALS,
    MAX_METRICS_PER_BATCH,
    RUN_GONE,
    Delivery,
    RunRefused,
    login_refused,
    summary,
)
from .ops import Metrics, Op, Start
from .spool import Spool

ANSWER_TIMEOUT = 5.0  # seconds a request of the worker waits for an answer (an upload: ARTIFACT_TIMEOUT)
ARTIFACT_TIMEOUT = 30.0
#: what a failure of the store looks like: its answers, the network's errors (OSError covers sockets;
#: the disk's own errors happen only while marking, outside the attempt), and a SQL store's database
STORE_FAILURES = (MlflowException, requests.RequestException, OSError, SQLAlchemyError)
PROBE_INTERVAL = 0.5  # seconds between probes of a store that refused the connection
STALL = 6.0  # a waiter gives up after this long without an answer from the store


@dataclass
class Progress:
    """What the thread has done: the highest sequence number delivered this session, failed
    attempts, the last failure, and a fault of the disk that needs a person (disk full)."""

    delivered: int = 0
    failures: int = 0
    answered_at: float = 0.0  # monotonic time of the store's last answer (0: none yet)
    last_error: str | None = None
    fault: str | None = None
    login_refused: bool = False


class Worker:
    """Delivers what is ``submit``-ted, in order, on a daemon thread named ``name``."""

    def __init__(
        self,
        spool: Spool,
        delivery: Delivery,
        tracking_uri: str,
        name: str,
        *,
        max_backoff: float = 30.0,
        linger: float = 0.0,
        probe: Callable[[], bool] | None = None,
    ):
        self._spool, self._delivery, self.tracking_uri, self.name = spool, delivery, tracking_uri, name
        self.max_backoff, self.linger, self._probe = max_backoff, linger, probe
        # a database store is probed before each attempt: MLflow would retry its engine for minutes
        self._database_probe = probe if is_database(tracking_uri) else None
        self._queue: collections.deque[Op] = collections.deque()
        self._cond = threading.Condition()
        self._marking = threading.Lock()  # the thread writes to the spool only while holding it
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._hurry = False  # a waiter arrived: the pause in progress ends now
        self._waiters = 0  # while anyone waits: no lingering, pauses of at most PROBE_INTERVAL
        self._probing = False  # the last failure was a refused connection: probe for the store's return
        self.progress = Progress()
        self._warned: set[str] = set()

    # -- the training side ------------------------------------------------------------------

    def submit(self, ops: Iterable[Op]) -> None:
        with self._cond:
            self._queue.extend(ops)
            self._cond.notify_all()

    @property
    def lost(self) -> list[str]:
        """What could not reach the store because its files are gone everywhere (``Delivery.lost``)."""
        return self._delivery.lost

    def last_queued(self) -> int:
        with self._cond:
            return self._queue[-1].seq if self._queue else self.progress.delivered

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def wait(self, seq: int, timeout: float, *, patient: bool = True) -> bool:
        """Wait until ``seq`` is delivered (True), at most ``timeout`` seconds. ``patient``: while the
        store answers, and for up to ``STALL`` seconds of silence (a restarting server); else give up
        at the first failed attempt (``start``: training does not wait for a store that is away).
        A disk fault or a refused login ends the wait at once."""
        deadline = time.monotonic() + timeout
        with self._cond:
            failures, waited_from = self.progress.failures, time.monotonic()
            self._hurry, self._waiters = True, self._waiters + 1
            self._cond.notify_all()
            try:
                while self.progress.delivered < seq:
                    now = time.monotonic()
                    if (
                        now >= deadline
                        or self.progress.fault
                        or (self.progress.login_refused and self.progress.failures > failures)
                    ):
                        return False
                    if self.progress.failures > failures:
                        if not patient:
                            return False
                        if now - max(self.progress.answered_at, waited_from) >= STALL:
                            return False
                    self._cond.wait(min(deadline - now, PROBE_INTERVAL))
                return True
            finally:
                self._waiters -= 1

    def stop(self) -> None:
        """Stop after the attempt in flight; when this returns the thread writes nothing more."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        with self._marking:
            pass

    # -- the thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                batch = self._next_batch()
                if batch is None:
                    return
                if self._attempt(batch):
                    backoff = 0.5
                else:
                    self._pause(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
            except Exception as error:  # noqa: BLE001 -- the thread never dies: record, warn once, go on
                self._record(f"{type(error).__name__} in the delivery thread: {error}", error)
                self._pause(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    def _next_batch(self) -> list[Op] | None:
        """The head of the queue; consecutive metric points of one run travel together (lingering up
        to ``linger`` seconds for more while nobody waits). None: stopping."""
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            if isinstance(self._queue[0], Metrics) and self.linger:
                until = time.monotonic() + self.linger
                while (
                    not self._stopping
                    and not self._waiters
                    and time.monotonic() < until
                    and self._metric_points() < MAX_METRICS_PER_BATCH
                ):
                    self._cond.wait(until - time.monotonic())
                if self._stopping:
                    return None
            head = self._queue[0]
            batch, count = [head], len(head.metrics) if isinstance(head, Metrics) else 0
            if isinstance(head, Metrics):
                for op in itertools.islice(self._queue, 1, None):
                    if not isinstance(op, Metrics) or op.run != head.run:
                        break
                    if count + len(op.metrics) > MAX_METRICS_PER_BATCH:
                        break
                    batch.append(op)
                    count += len(op.metrics)
            return batch

    def _metric_points(self) -> int:
        return sum(len(op.metrics) for op in self._queue if isinstance(op, Metrics))

    def _attempt(self, batch: list[Op]) -> bool:
        """Deliver and mark one batch; False when it must be tried again. A failure of the store (its
        answer, the network) is retried here; anything else is this code's own and goes to ``_run``."""
        run_id: str | None = None
        notes: list[str] = []
        try:
            if self._database_probe is not None and not self._database_probe():
                raise ConnectionRefusedError(f"[Errno 111] Connection refused: nothing listens at {self.tracking_uri}")
            with bounded(ARTIFACT_TIMEOUT if hasattr(batch[0], "directory") else ANSWER_TIMEOUT), quiet():
                run_id, notes = self._delivery.deliver(batch)
        except RunRefused as refusal:
            notes = [refusal.note] if refusal.note else []
        except STORE_FAILURES as error:
            if not _is_permanent(error, batch[0]):
                self._failed(error, batch[0])
                return False
            notes = [
                f"the tracking store {self.tracking_uri} refused a {batch[0].kind!r} operation and it is "
                f"dropped: {summary(error)}"
            ]
        with self._cond:
            self.progress.answered_at = time.monotonic()
        crash_point("delivery.sent")
        for note in notes:  # before the mark: whoever waits for it has heard them
            warnings.warn(note, TrackingWarning, stacklevel=2)
        try:
            self._mark(batch, run_id)
        except OSError as error:  # disk full, read-only: the batch arrived but cannot be marked; sent again later
            self._record(
                f"the disk of {self._spool.path} refused a write ({error.strerror or error}): delivered "
                "work cannot be marked; free space, then sync",
                error,
                fault=True,
            )
            return False
        return True

    def _mark(self, batch: list[Op], run_id: str | None) -> None:
        """Record that the store has ``batch`` (nothing once stopping: the spool is no longer this
        thread's to write)."""
        with self._marking:
            if self._stopping:
                return
            if run_id is not None:
                self._spool.set_run(batch[0].run, run_id)
            self._spool.mark_delivered(batch[-1].seq)
            for op in batch:
                directory = getattr(op, "directory", None)
                if directory is not None:
                    self._spool.remove_outbox(directory)
        with self._cond:
            for _ in batch:
                self._queue.popleft()
            self.progress.delivered = batch[-1].seq
            self.progress.fault = None
            self._cond.notify_all()

    def _failed(self, error: Exception, op: Op) -> None:
        """One warning (the first failure), given before anyone waiting hears of the failure."""
        timeout = ARTIFACT_TIMEOUT if hasattr(op, "directory") else ANSWER_TIMEOUT
        why = f"the store did not answer within {timeout:g} s" if "timed out" in str(error).lower() else summary(error)
        status = LOGIN_REFUSALS.get(getattr(error, "error_code", None))  # type: ignore[arg-type]
        with self._cond:
            self.progress.login_refused = status is not None
            self._probing = _refused_connection(error)
        if status is not None:
            self._warn_once("login", login_refused(self.tracking_uri, status, self._spool.path))
        else:
            self._warn_once(
                "behind",
                f"tracking to {self.tracking_uri} is behind: {why}. Training goes on; what is "
                f"not delivered yet is kept in {self._spool.path} and sent when the store answers "
                "(retried in the background, at close(), at the next run in this model directory, or "
                "with elistimator_tracking.tracking.sync(model_dir))",
            )
        with self._cond:
            self.progress.last_error = why
            self.progress.failures += 1
            self._cond.notify_all()

    def _record(self, why: str, error: BaseException, fault: bool = False) -> None:
        self._warn_once(why.split(":")[0], f"{why}. Training goes on; the work is kept in {self._spool.path}")
        with self._cond:
            self.progress.last_error = why
            self.progress.failures += 1
            if fault:
                self.progress.fault = why
            self._cond.notify_all()

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            warnings.warn(message, TrackingWarning, stacklevel=2)

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` before the next attempt; sooner when a waiter hurries or the store listens again."""
        with self._cond:
            until = time.monotonic() + (min(seconds, PROBE_INTERVAL) if self._waiters else seconds)
            self._hurry = False
            while not self._stopping and time.monotonic() < until and not self._hurry:
                self._cond.wait(min(PROBE_INTERVAL, max(0.0, until - time.monotonic())))
                if self._probing and self._probe is not None and self._probe_says_back():
                    return
            self._hurry = False

    def _probe_says_back(self) -> bool:
        self._cond.release()  # a probe takes up to PROBE_INTERVAL: never while holding the condition
        try:
            return bool(self._probe and self._probe())
        finally:
            self._cond.acquire()


def store_probe(tracking_uri: str) -> Callable[[], bool] | None:
    """A check whether the store at ``tracking_uri`` listens (a TCP connection to its host and port, no
    request), for stores on a network (HTTP, PostgreSQL, MySQL); None for local ones."""
    address = network_address(tracking_uri)
    if address is None:
        return None
    return lambda: unreachable(address, PROBE_INTERVAL * 0.8) is None


def _refused_connection(error: BaseException) -> bool:
    """A store that is not listening (rather than one that is slow or answers with an error)."""
    text = f"{error} {error.__cause__ or ''} {error.__context__ or ''}"
    words = ("Connection refused", "Errno 111", "NewConnectionError", "Failed to establish")
    return any(word in text for word in words)


def _is_permanent(error: Exception, op: Op) -> bool:
    """Refusals that retrying cannot change; a start is retried unless ``Delivery`` says the store
    refused it (the run must exist first, and e.g. a deleted experiment can be restored)."""
    return not isinstance(op, Start) and getattr(error, "error_code", None) in ITEM_REFUSALS + RUN_GONE
