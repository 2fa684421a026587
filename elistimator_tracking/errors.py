"""The package's exceptions and warnings: one tree, so ``except ElistimatorError`` catches every
error the package raises on purpose.

Each error is also the built-in type callers already catch (``except ValueError`` code keeps
working): a value the package refuses is a ``ValueError``, a value of the wrong type a
``TypeError``, a call out of order a ``RuntimeError``, something asked for that does not exist
a ``LookupError``. ``docs/errors.md`` lists every class, when it is raised and what its
message names.
"""

from __future__ import annotations


class ElistimatorError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidValueError(ElistimatorError, ValueError):
    """A value the package refuses: an argument, an option, or what a model or input function
    returned. The message names the value, what was wrong and what is expected."""


class InvalidTypeError(ElistimatorError, TypeError):
    """A value of the wrong type: an argument, an option, or what a model or input function
    returned. The message names the value, its type and the types expected."""


class UsageError(ElistimatorError, RuntimeError):
    """A call out of order: training before ``setup()``, predicting without a ``PredictSpec``, any
    call on a closed Elistimator. The message names the call to make first."""


class NotSupportedError(ElistimatorError, NotImplementedError):
    """A feature this package does not offer (yet): a tf.estimator option, a strategy, an export mode."""


class NotFoundError(ElistimatorError, LookupError):
    """What was asked for does not exist: an experiment, a run, a metric to select by."""


class CheckpointNotFoundError(NotFoundError):
    """The checkpoint asked for does not exist: no such step, path, run, model version or
    metric to select by, or its files are gone and no run holds them."""


class DivergedError(ElistimatorError, FloatingPointError):
    """The training loss became NaN or infinite: training stops at that step."""


class ModelDirectoryError(ElistimatorError, ValueError):
    """A model directory that is missing, not a directory, incomplete, corrupt, unsafe to load,
    or already holding another model."""


class ModelDirectoryBusy(ModelDirectoryError):
    """Another Elistimator (or ``sync``), in this or another process, is writing the model directory."""


class ModelDirectoryChanged(ModelDirectoryError):
    """Another writer committed to the model directory since this Elistimator loaded it (or last wrote
    it): writing from the stale view would drop what the other one committed. Load it again.

    ``path`` is the directory, ``expected`` the generation this writer knew and ``found`` the one
    ``elistimator.json`` holds now (``commits.py`` describes generations)."""

    def __init__(self, message: str, path: str = "", expected: str | None = None, found: str | None = None):
        super().__init__(message)
        self.path, self.expected, self.found = path, expected, found


class UnsafeModelError(ModelDirectoryError):
    """A model from a remote source (``runs:/``, ``models:/``, a download cache entry) holds an op that
    is not on the allow-list of what a restored model may run (file I/O, Python calls, other side
    effects): ``graph_safety.py``. ``from_disk(..., trust_store=True)`` loads it anyway."""


class PathExistsError(ElistimatorError, FileExistsError):
    """A destination that must be new exists already (``elistimator download``)."""


class MissingDependencyError(ElistimatorError, ImportError):
    """An option needs a package that is not installed (``system_metrics=True`` needs ``psutil``): the
    message names the pip extra that brings it."""


class TrackingError(ElistimatorError, RuntimeError):
    """A tracking operation the caller asked for (register, sync, a remote lookup) cannot be done."""


class StoreNotFoundError(TrackingError, FileNotFoundError):
    """A local tracking store (``sqlite:///...``, a folder) that does not exist: reading never creates one."""


class WorkerLostError(ElistimatorError, RuntimeError):
    """A worker of a multi-worker job stopped answering (killed, crashed or stalled) within the
    session's ``operation_timeout_in_ms``: the step could not complete on every worker."""


class TrainingStopped(ElistimatorError):
    """A listener stopped training: ``EarlyStopping``, a sweep's pruner, or a listener of yours that
    raised it. The moment it was raised in completes (a validation or checkpoint is committed),
    training ends after the step in progress, and the next ``train()`` raises it; ``reason`` says
    why, ``step`` at which global step, ``best`` the best value so far when there is one. A run that
    ends with it ends ``run_status`` (FINISHED: a stop is no failure)."""

    run_status = "FINISHED"

    def __init__(self, reason: str, *, step: int | None = None, best: str | None = None):
        super().__init__(reason)
        self.reason, self.step, self.best = reason, step, best

    def at(self, step: int) -> TrainingStopped:
        """This stop at global ``step`` (the one it was asked at, unless it said)."""
        if self.step is None:
            self.step = step
        return self


class ElistimatorWarning(UserWarning):
    """Base of every warning this package gives."""


class TrackingWarning(ElistimatorWarning):
    """Tracking is behind, or something is not being tracked (training goes on)."""


class AliasKeptWarning(TrackingWarning):
    """A new registered version did not take the alias: it does not beat the alias's version."""


class CheckpointsDroppedWarning(ElistimatorWarning):
    """Training goes on from a restored, older checkpoint: the later checkpoints and validations of
    the abandoned branch are dropped."""
