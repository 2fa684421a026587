"""The package's exceptions: one type per kind of fault, whatever path meets it.

Each is also a built-in type callers already catch: a missing checkpoint is a
``LookupError``, a bad model directory a ``ValueError``, a tracking failure the caller
asked about (registering, syncing) a ``RuntimeError``.
"""

from __future__ import annotations


class ElistimatorError(Exception):
    """Base of every error this package raises on purpose."""


class CheckpointNotFoundError(ElistimatorError, LookupError):
    """The checkpoint asked for does not exist: no such step, path, run, model version or
    metric to select by, or its files are gone and no run holds them."""


class ModelDirectoryError(ElistimatorError, ValueError):
    """A model directory that is missing, not a directory, incomplete, corrupt, unsafe to load,
    or already holding another model."""


class TrackingError(ElistimatorError, RuntimeError):
    """A tracking operation the caller asked for (register, sync, a remote lookup) cannot be done."""


class ModelDirectoryBusy(ModelDirectoryError):
    """Another Elistimator (or ``sync``), in this or another process, is writing the model directory."""


class WorkerLostError(ElistimatorError, RuntimeError):
    """A worker of a multi-worker job stopped answering (killed, crashed or stalled) within the
    session's ``operation_timeout_in_ms``: the step could not complete on every worker."""
