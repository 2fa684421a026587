"""What an Elistimator lets you read: its model directory, graph, session, global step, run and inputs.

A base class of the facade (``elistimator.py``), split off by concern as ``checkpoint_api.py`` is: the
properties read the parts the facade assembles.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import TrainingStopped, UsageError

if TYPE_CHECKING:
    from ._tf import tf
    from .loops import Loops
    from .model_dir import ModelDirectory
    from .tracking.base import Tracker
    from .tracking.listener import TrackingListener


class ElistimatorProperties:
    """The read-only view of an Elistimator (the parts are the facade's)."""

    _directory: ModelDirectory
    _loops: Loops | None
    _run: TrackingListener
    _stopped: TrainingStopped | None
    _closed: bool

    @property
    def model_dir(self) -> Path:
        """The model directory: checkpoints, TensorBoard events, ``elistimator.json``, the tracking journal."""
        return self._directory.path

    @property
    def closed(self) -> bool:
        """True once ``close()`` (or leaving its ``with`` block) ended the run; closing again does nothing."""
        return self._closed

    @property
    def graph(self) -> tf.Graph | None:
        """The model graph (None until ``setup()`` built it, or ``from_disk`` loaded it)."""
        return self._loops.model.graph if self._loops else None

    @property
    def session(self) -> tf.Session | None:
        """The session running the model graph (None until ``setup()``): yours to run fetches of your own."""
        return self._loops.session if self._loops else None

    @property
    def global_step(self) -> int:
        """The global step of the live weights (0 before training)."""
        return self._loops.global_step if self._loops else 0

    @property
    def run_id(self) -> str | None:
        """The MLflow run this Elistimator tracks to (None before ``setup()``, without tracking,
        or while the store has not answered yet)."""
        record = self._run.record
        return record.run_id if record else None

    @property
    def tracking_uri(self) -> str | None:
        """Where this Elistimator's run is tracked, without credentials (None without tracking)."""
        record = self._run.record
        return record.tracking_uri if record else getattr(self._run.tracker, "tracking_uri", None)

    @property
    def tracker(self) -> Tracker:
        """The ``Tracker`` the run's moments go to (a ``NullTracker`` with ``tracking=False``)."""
        return self._run.tracker

    @property
    def stopped(self) -> TrainingStopped | None:
        """Why a listener stopped training (``EarlyStopping``, a pruner), or None: the next ``train()``
        raises it."""
        return self._stopped

    @property
    def input_signature(self) -> dict[Any, str]:
        """``{feature: 'dtype (shape)'}`` as recorded from the training data.

        Raises:
            UsageError: before ``setup()`` (a new model), or after ``close()``.
        """
        model = self._require_model("input_signature").model
        return {f.key: f"{f.dtype} {f.shape_text()}" for f in model.signature}

    @property
    def prediction_features(self) -> list[dict[str, Any]]:
        """The features ``predict`` needs (those the PredictSpec's outputs depend on), in signature
        order: ``{'key', 'dtype', 'shape', 'tensor'}`` with ``None`` for a dimension of any size.

        Raises:
            UsageError: before ``setup()`` (a new model), or after ``close()``.
        """
        model = self._require_model("prediction_features").model
        needed = model.predict_needs()
        return [f.to_json() for f in model.signature if f.key in needed]

    @property
    def training_loss(self) -> tf.Tensor:
        """The TrainSpec's loss tensor in the model graph (for what watches training steps).

        Raises:
            UsageError: before ``setup()`` (a new model), or after ``close()``.
        """
        return self._require_model("training_loss").model.train.loss

    @property
    def prediction_outputs(self) -> tuple[str, ...]:
        """The names of the PredictSpec's outputs, as ``predict`` returns them.

        Raises:
            UsageError: before ``setup()`` (a new model), or after ``close()``.
        """
        return tuple(self._require_model("prediction_outputs").model.predict_spec().output)

    def _require_open(self) -> None:
        if self._closed:
            raise UsageError("this Elistimator is closed")

    def _require_model(self, what: str) -> Loops:
        self._require_open()
        if self._loops is None:
            raise UsageError(f"{what} needs a model: call setup(train_input_fn, ...) first")
        return self._loops
