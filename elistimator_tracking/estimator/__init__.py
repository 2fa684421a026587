"""The tf.estimator 1.15 API on TensorFlow 2.21, tracked in MLflow.

``from elistimator_tracking import estimator as tf_estimator`` (or ``tf.estimator = estimator``)
and an estimator program runs unchanged: ``model_fn(features, labels, mode, params)``
returning ``EstimatorSpec``, ``input_fn`` returning a Dataset, ``train``/``evaluate``/
``predict``/``export_saved_model``, ``train_and_evaluate``, ``SessionRunHook``s. Underneath,
an Elistimator keeps one graph and session, checkpoints and the MLflow run.
"""

from .._tf import tf as _tf
from . import export
from .canned import (
    DNNClassifier,
    DNNLinearCombinedClassifier,
    DNNLinearCombinedRegressor,
    DNNRegressor,
    LinearClassifier,
    LinearRegressor,
)
from .config import RunConfig
from .estimator import Estimator
from .exporters import BestExporter, Exporter, FinalExporter, LatestExporter
from .spec import EstimatorSpec, ModeKeys
from .training import EvalSpec, TrainSpec, train_and_evaluate
from .warm_start import VocabInfo, WarmStartSettings

SessionRunHook = _tf.train.SessionRunHook
CheckpointSaverListener = _tf.train.CheckpointSaverListener
LoggingTensorHook = _tf.train.LoggingTensorHook
StopAtStepHook = _tf.train.StopAtStepHook
NanTensorHook = _tf.train.NanTensorHook

__all__ = [
    "Estimator",
    "DNNClassifier",
    "DNNRegressor",
    "LinearClassifier",
    "LinearRegressor",
    "DNNLinearCombinedClassifier",
    "DNNLinearCombinedRegressor",
    "EstimatorSpec",
    "ModeKeys",
    "RunConfig",
    "TrainSpec",
    "EvalSpec",
    "train_and_evaluate",
    "Exporter",
    "LatestExporter",
    "FinalExporter",
    "BestExporter",
    "WarmStartSettings",
    "VocabInfo",
    "export",
    "SessionRunHook",
    "CheckpointSaverListener",
    "LoggingTensorHook",
    "StopAtStepHook",
    "NanTensorHook",
]
