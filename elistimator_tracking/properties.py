"""What an Elistimator shows: its directory, graph, session and global step, its run, and what its
model reads and predicts. A base class of the facade (``elistimator.py``), split off by concern."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._tf import tf
from .errors import TrainingStopped

if TYPE_CHECKING:
    from .loops import Loops
    from .model_dir import ModelDirectory
    from .tracking.base import Tracker
    from .tracking.listener import TrackingListener


class ModelProperties:
    """The facade's read-only properties (the parts are the facade's)."""

    _directory: ModelDirectory
    _loops: Loops | None
    _run: TrackingListener
    _stopped: TrainingStopped | None

    def _require_model(self, what: str) -> Loops:  # the facade's: its loops, or a UsageError naming ``what``
        raise NotImplementedError

    @property
    def model_dir(self) -> Path:
        return self._directory.path

    @property
    def graph(self) -> tf.Graph | None:
        """The model graph (None until ``setup()`` built it)."""
        return self._loops.model.graph if self._loops else None

    @property
    def session(self) -> tf.Session | None:
        """The session running the model graph (None until ``setup()``)."""
        return self._loops.session if self._loops else None

    @property
    def global_step(self) -> int:
        return self._loops.global_step if self._loops else 0

    @property
    def run_id(self) -> str | None:
        """The MLflow run this Elistimator tracks to (None before ``setup()``, without tracking,
        or while the store has not answered yet)."""
        record = self._run.record
        return record.run_id if record else None

    @property
    def tracking_uri(self) -> str | None:
        """Where this Elistimator's run is tracked (None without tracking)."""
        record = self._run.record
        return record.tracking_uri if record else getattr(self._run.tracker, "tracking_uri", None)

    @property
    def tracker(self) -> Tracker:
        return self._run.tracker

    @property
    def stopped(self) -> TrainingStopped | None:
        """Why a listener stopped training (``EarlyStopping``, a pruner), or None: the next ``train()``
        raises it."""
        return self._stopped

    @property
    def input_signature(self) -> dict[Any, str]:
        """``{feature: 'dtype (shape)'}`` as recorded from the training data."""
        model = self._require_model("input_signature").model
        return {f.key: f"{f.dtype} {f.shape_text()}" for f in model.signature}

    @property
    def prediction_features(self) -> list[dict[str, Any]]:
        """The features ``predict`` needs (those the PredictSpec's outputs depend on), in signature
        order: ``{'key', 'dtype', 'shape', 'tensor'}`` with ``None`` for a dimension of any size."""
        model = self._require_model("prediction_features").model
        needed = model.predict_needs()
        return [f.to_json() for f in model.signature if f.key in needed]

    @property
    def training_loss(self) -> tf.Tensor:
        """The TrainSpec's loss tensor in the model graph (for what watches training steps)."""
        return self._require_model("training_loss").model.train.loss

    @property
    def prediction_outputs(self) -> tuple[str, ...]:
        """The names of the PredictSpec's outputs, as ``predict`` returns them."""
        return tuple(self._require_model("prediction_outputs").model.predict_spec().output)
