"""elistimator_tracking: a training object for TF1-style graph models, tracked in MLflow."""

from ._version import __version__
from .datasets import named_input
from .elistimator import Elistimator
from .errors import CheckpointNotFoundError, ElistimatorError, ModelDirectoryError, TrackingError
from .specs import EvaluationSpec, PredictSpec, TrainSpec

__all__ = ["Elistimator", "TrainSpec", "EvaluationSpec", "PredictSpec", "named_input", "ElistimatorError",
           "CheckpointNotFoundError", "ModelDirectoryError", "TrackingError", "__version__"]
