"""Ending what a script left open when the interpreter exits, as MLflow's fluent API ends its active run.

An Elistimator whose run started (its first ``setup()``) and that was not closed is closed at
exit: FINISHED after a normal end of the script, FAILED after an unhandled exception (with the
error), KILLED after Ctrl-C, SIGTERM or ``sys.exit`` with a code other than 0. SIGTERM gets a
handler only while such an Elistimator is open and only where the process had none of its own
(the default action): it raises ``SystemExit(128 + SIGTERM)`` in the main thread, so ``with``
blocks and ``finally`` clauses unwind before the exit handler ends the rest.

Python shows exit handlers neither the ``SystemExit`` that ended the script nor its code, so
``sys.exit`` is wrapped while such an Elistimator is open, in the main thread, to record the code
(``raise SystemExit(n)`` written out is not seen: it ends FINISHED). After Ctrl-C (before the
exit, or while the runs are being closed at exit: a logged model still being packaged, say) the
runs end KILLED and the process dies by SIGINT once the other exit handlers ran, as CPython's own
Ctrl-C does (the shell's exit status 130), whatever the closing did to CPython's own record of
the interrupt.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

Closer = Callable[[str, str | None], None]  # close(status, error)

_open: dict[int, Closer] = {}
_lock = threading.Lock()
_registered = False
_signalled: str | None = None
_exit_code: str | int | None = None  # what sys.exit was called with in the main thread (None: not called, or 0)
_interrupted = False  # Ctrl-C ended the script or its closing at exit: the process ends by SIGINT
_system_exit = sys.exit


def keep_open(key: int, close: Closer) -> None:
    """``close(status, error)`` is called at interpreter exit unless ``closed(key)`` came first."""
    global _registered
    with _lock:
        _open[key] = close
        if not _registered:
            _register_at_exit(_close_all)
            _registered = True
    _handle_sigterm()
    if sys.exit is _system_exit:
        sys.exit = _recording_exit


def _recording_exit(status: str | int | None = None) -> NoReturn:
    """``sys.exit``, remembering a main-thread exit code for the runs still open at exit."""
    global _exit_code
    if threading.current_thread() is threading.main_thread():
        _exit_code = status
    _system_exit(status)


def _register_at_exit(handler: Callable[[], None]) -> None:
    """Run ``handler`` when the interpreter starts to exit, before ``concurrent.futures`` refuses new
    work: delivering a run's last operations (a checkpoint's logged model, say) uses MLflow code
    that submits to thread pools. ``threading``'s own exit hooks run, newest first, before the
    interpreter joins threads and before ``atexit`` handlers (the pools register theirs there when
    imported, so ours, registered later, runs first). ``atexit`` where that hook does not exist."""
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is not None:
            register(handler)
            return
    except RuntimeError:  # the interpreter is already shutting down
        pass
    atexit.register(handler)


def closed(key: int) -> None:
    with _lock:
        _open.pop(key, None)
        last = not _open
    if (
        last
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is _on_sigterm
    ):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def status_of(error: BaseException | None) -> tuple[str, str | None]:
    """A run's end after ``error`` (None: none): FINISHED, KILLED (Ctrl-C, ``sys.exit`` with a code
    other than 0 or None) or FAILED with the error's text. An error that says how a run ends
    (``run_status``: a listener's ``TrainingStopped``, a sweep's pruned trial) ends it so."""
    if error is None or (isinstance(error, SystemExit) and error.code in (0, None)):
        return "FINISHED", None
    status = getattr(error, "run_status", None)
    if status in ("FINISHED", "FAILED", "KILLED"):
        return status, None if status == "FINISHED" else str(error)
    if isinstance(error, (KeyboardInterrupt, SystemExit)):
        return "KILLED", type(error).__name__
    return "FAILED", "".join(traceback.format_exception_only(type(error), error)).strip()


def ending(end: Closer, status: str, error: str | None) -> None:
    """``end(status, error)``; after Ctrl-C during it (awaiting delivery, say), ``end`` again as KILLED,
    then the interrupt goes on (a second Ctrl-C leaves the KILLED end journaled for ``sync``)."""
    try:
        end(status, error)
    except KeyboardInterrupt:
        end(*status_of(KeyboardInterrupt()))
        raise


def exit_status() -> tuple[str, str | None]:
    """How the interpreter is ending: ``(status, error)`` for the runs still open."""
    if _signalled:
        return "KILLED", _signalled
    error = getattr(sys, "last_value", None)  # set when an exception reached the top level
    if isinstance(error, BaseException):
        return status_of(error)
    return status_of(None if _exit_code is None else SystemExit(_exit_code))


def _close_all() -> None:
    global _interrupted
    status, error = exit_status()
    _interrupted = _interrupted or error == "KeyboardInterrupt"
    with _lock:
        closers = list(_open.values())
        _open.clear()
    for close in closers:
        try:
            close(status, error)
        except KeyboardInterrupt:  # Ctrl-C while closing: that one ended KILLED (Elistimator._close), so do the rest
            status, error, _interrupted = "KILLED", "KeyboardInterrupt", True
        except Exception as failure:  # noqa: BLE001 -- one Elistimator failing must not keep the others open
            print(f"elistimator_tracking: closing at exit failed: {type(failure).__name__}: {failure}", file=sys.stderr)


@atexit.register  # at import, before MLflow's and most others: it runs after them
def _end_by_sigint() -> None:
    """After Ctrl-C, end the process by SIGINT (as CPython does for an unhandled KeyboardInterrupt)."""
    if _interrupted:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)


def _handle_sigterm() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, _frame: Any) -> None:
    global _signalled
    _signalled = signal.Signals(signum).name
    raise SystemExit(128 + signum)
