"""Bounded, quiet calls to an MLflow store, without changing the user's process-wide settings.

MLflow's REST client reads ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` and
``MLFLOW_HTTP_REQUEST_TIMEOUT`` on every request, and its defaults retry for minutes
when a server is down; it offers no per-client setting. Its artifact downloads draw
progress bars unless ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR`` is false. This package's own
calls run inside ``bounded(...)``, which overrides those settings (no progress bars) for
the current thread only (a context variable), and only where the user has not set them in
the environment. The user's own MLflow calls, on any thread, behave as MLflow documents.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from typing import Iterator, Optional, Tuple

#: seconds a call outside training (CLI, from_disk, register, sync) may wait for an answer
STORE_TIMEOUT_ENV = "ELISTIMATOR_STORE_TIMEOUT"
DEFAULT_STORE_TIMEOUT = 10.0

_limits: contextvars.ContextVar[Optional[Tuple[int, float, bool]]] = contextvars.ContextVar(
    "elistimator_http_limits", default=None)
_install_lock = threading.Lock()
_installed = False


def store_timeout() -> float:
    """The answer timeout for calls outside training: ``$ELISTIMATOR_STORE_TIMEOUT`` or 10 s."""
    value = os.environ.get(STORE_TIMEOUT_ENV)
    try:
        return float(value) if value else DEFAULT_STORE_TIMEOUT
    except ValueError:
        raise ValueError(f"{STORE_TIMEOUT_ENV} must be a number of seconds, got {value!r}") from None


@contextlib.contextmanager
def bounded(timeout: Optional[float] = None, retries: int = 0) -> Iterator[None]:
    """MLflow HTTP requests made by this thread inside the block retry ``retries`` times and wait
    at most ``timeout`` seconds (default ``store_timeout()``) for an answer; downloads draw no
    progress bars."""
    _install()
    token = _limits.set((retries, store_timeout() if timeout is None else timeout, False))
    try:
        yield
    finally:
        _limits.reset(token)


def _install() -> None:
    """Teach MLflow's three settings to consult the context variable (once per process)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from mlflow.environment_variables import (MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR, MLFLOW_HTTP_REQUEST_MAX_RETRIES,
                                                  MLFLOW_HTTP_REQUEST_TIMEOUT)
        for position, variable in enumerate((MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT,
                                             MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR)):
            variable.get = _consulting(variable, variable.get, position)
        _installed = True


def _consulting(variable, original, position: int):
    def get():
        limits = _limits.get()
        if limits is None or variable.name in os.environ:
            return original()
        return limits[position]
    return get
