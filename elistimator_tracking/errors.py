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


class EstimatorTypeError(InvalidTypeError, InvalidValueError):
    """A value of the wrong type where tf.estimator raised ``ValueError`` (a ``config`` that is not a
    ``RunConfig``, a ``model_fn`` that returns no ``EstimatorSpec``): both a ``TypeError`` and a
    ``ValueError``, so code written for either keeps catching it."""


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


class PathExistsError(ElistimatorError, FileExistsError):
    """A destination that must be new exists already (``elistimator download``)."""


class TrackingError(ElistimatorError, RuntimeError):
    """A tracking operation the caller asked for (register, sync, a remote lookup) cannot be done."""


class StoreNotFoundError(TrackingError, FileNotFoundError):
    """A local tracking store (``sqlite:///...``, a folder) that does not exist: reading never creates one."""


class WorkerLostError(ElistimatorError, RuntimeError):
    """A worker of a multi-worker job stopped answering (killed, crashed or stalled) within the
    session's ``operation_timeout_in_ms``: the step could not complete on every worker."""


class ElistimatorWarning(UserWarning):
    """Base of every warning this package gives."""


class TrackingWarning(ElistimatorWarning):
    """Tracking is behind, or something is not being tracked (training goes on)."""


class AliasKeptWarning(TrackingWarning):
    """A new registered version did not take the alias: it does not beat the alias's version."""


class CheckpointsDroppedWarning(ElistimatorWarning):
    """Training goes on from a restored, older checkpoint: the later checkpoints and validations of
    the abandoned branch are dropped."""
