"""Bounded, quiet calls to an MLflow store, without changing the user's process-wide settings.

MLflow's REST client reads ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` and
``MLFLOW_HTTP_REQUEST_TIMEOUT`` on every request, and its defaults retry for minutes
when a server is down; it offers no per-client setting. This package's own calls run
inside ``bounded(...)``, which overrides those two settings for the current thread
only (a context variable), and only where the user has not set them in the
environment. The user's own MLflow calls, on any thread, behave as MLflow documents.

``quiet()`` does the same for what MLflow prints on its own: artifact progress bars
(``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``) and the "View run at" lines a finished run prints
(``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT``; ours carry the UI's model-training view, ``ui.py``);
``quiet_store_logs()`` hides the store's table-creation INFO lines unless the user configured them.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
from collections.abc import Iterator

from ..errors import InvalidValueError

#: seconds a call outside training (CLI, from_disk, register, sync) may wait for an answer
STORE_TIMEOUT_ENV = "ELISTIMATOR_STORE_TIMEOUT"
DEFAULT_STORE_TIMEOUT = 10.0

_limits: contextvars.ContextVar[tuple[int, float] | None] = contextvars.ContextVar(
    "elistimator_http_limits", default=None
)
_quiet: contextvars.ContextVar[bool] = contextvars.ContextVar("elistimator_quiet", default=False)
_ours: contextvars.ContextVar[bool] = contextvars.ContextVar("elistimator_ours", default=False)
_install_lock = threading.Lock()
_installed = False


def store_timeout() -> float:
    """The answer timeout for calls outside training: ``$ELISTIMATOR_STORE_TIMEOUT`` or 10 s."""
    value = os.environ.get(STORE_TIMEOUT_ENV)
    try:
        return float(value) if value else DEFAULT_STORE_TIMEOUT
    except ValueError:
        raise InvalidValueError(f"{STORE_TIMEOUT_ENV} must be a number of seconds, got {value!r}") from None


@contextlib.contextmanager
def bounded(timeout: float | None = None, retries: int = 0) -> Iterator[None]:
    """MLflow HTTP requests made by this thread inside the block retry ``retries`` times and wait
    at most ``timeout`` seconds (default ``store_timeout()``) for an answer."""
    _install()
    token = _limits.set((retries, store_timeout() if timeout is None else timeout))
    ours = _ours.set(True)
    try:
        yield
    finally:
        _ours.reset(ours)
        _limits.reset(token)


def in_our_call() -> bool:
    """Whether this context is inside one of this package's store calls (``bounded``): what the
    package does to MLflow's requests (limits, kept credentials) applies there only."""
    return _ours.get()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """MLflow calls of this thread inside the block print no artifact progress bars and no
    "View run at" lines (unless the user set those settings in the environment)."""
    _install()
    token = _quiet.set(True)
    try:
        yield
    finally:
        _quiet.reset(token)


def _install() -> None:
    """Teach MLflow's settings to consult the context variables (once per process)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from mlflow.environment_variables import (
            MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR,
            MLFLOW_HTTP_REQUEST_MAX_RETRIES,
            MLFLOW_HTTP_REQUEST_TIMEOUT,
            MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT,
        )

        for position, variable in enumerate((MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT)):
            variable.get = _consulting(variable, variable.get, position)  # type: ignore[method-assign]
        for variable, when_quiet in (
            (MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR, False),
            (MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT, True),
        ):
            variable.get = _quieted(variable, variable.get, when_quiet)  # type: ignore[method-assign]
        _installed = True


def _quieted(variable, original, when_quiet: bool):
    def get():
        return when_quiet if _quiet.get() and variable.name not in os.environ else original()

    return get


def _consulting(variable, original, position: int):
    def get():
        limits = _limits.get()
        if limits is None or variable.name in os.environ:
            return original()
        return limits[position]

    return get


def quiet_store_logs() -> None:
    """MLflow's INFO lines on creating a store's tables (or on waiting for a registered version) are
    not news. A user who configured MLflow's logging (``MLFLOW_LOGGING_LEVEL``, or a level on these
    loggers) keeps it."""
    for name in ("mlflow.store.db.utils", "alembic", "mlflow.store.model_registry.abstract_store"):
        logger = _unconfigured(name)
        if logger is not None:
            logger.setLevel(logging.WARNING)


@contextlib.contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    """``name``'s INFO lines hidden for the block, unless the user configured MLflow's logging."""
    logger = _unconfigured(name)
    if logger is None:
        yield
        return
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(logging.NOTSET)


def _unconfigured(name: str) -> logging.Logger | None:
    """The logger ``name`` when the user left its level alone (no ``MLFLOW_LOGGING_LEVEL``, no level
    of its own), else None."""
    logger = logging.getLogger(name)
    return logger if "MLFLOW_LOGGING_LEVEL" not in os.environ and logger.level == logging.NOTSET else None
