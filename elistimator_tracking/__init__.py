"""elistimator_tracking: a training object for TF1-style graph models, tracked in MLflow."""

from .elistimator import Elistimator
from .specs import EvaluationSpec, PredictSpec, TrainSpec

__version__ = "0.1.0"

__all__ = ["Elistimator", "TrainSpec", "EvaluationSpec", "PredictSpec", "__version__"]
