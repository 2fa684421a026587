"""Listeners: whoever watches a run hears of it at a few named moments, one typed method each.

Pass your own with ``Elistimator(..., listeners=[...])`` (or ``from_disk``): subclass ``Listener``
and override the moments you care about. TensorBoard event files (``events.py``), the MLflow run
(``tracking/listener.py``) and early stopping (``early_stopping.py``) are listeners too; the
loops never know who listens. In the spirit of ``tf.train.CheckpointSaverListener``, Keras'
callbacks and Lightning's loggers.

- A listener that raises loses that one call, with one warning per listener, moment and kind of
  error; training goes on. Except at ``on_setup``: an ``ElistimatorError`` there (a listener's
  own configuration refused, e.g. a monitored metric the model does not compute) fails
  ``setup()``, before any training.
- A listener stops training by raising ``TrainingStopped(reason)``: the moment still completes
  (every listener hears it, the checkpoint or validation is committed), training ends after the
  step in progress, and the next ``train()`` raises it to the caller.
- A validation, a checkpoint and a branch are announced *before* ``elistimator.json`` commits them,
  and ``on_commit`` follows the commit: a listener that keeps a durable record (the tracking
  journal) writes it first and acts on it after, so a crash in between never leaves the file
  holding something its record lacks.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoints import CheckpointIndex
from .datasets import DataDescription
from .errors import ElistimatorError, ElistimatorWarning, TrainingStopped


@dataclass(frozen=True)
class RunContext:
    """What a listener learns at ``setup()``: the model directory, the model and its settings, the
    checkpoint index as ``elistimator.json`` holds it, and the names of the metrics ``validate()``
    returns (``loss`` and the EvaluationSpec's metrics; empty without one)."""

    model_dir: Path
    params: Mapping[str, Any]
    saver: Mapping[str, Any]  # max_to_keep and the tf.train.Saver arguments
    model_fn: Callable | None  # None for a model loaded with from_disk
    graph: Any  # the tf.Graph
    index: CheckpointIndex
    validation_metrics: tuple[str, ...] = ()


@dataclass(frozen=True)
class SavedCheckpoint:
    """A committed checkpoint: its step, its validation metrics, the index it belongs to, and
    ``write(destination, files=True)``, which makes ``destination`` a self-contained model
    directory of just this checkpoint (hard-linked files; ``files=False``: the JSON only)."""

    step: int
    metrics: Mapping[str, float]
    index: CheckpointIndex
    write: Callable[..., None]


class Listener:
    """Override the moments you care about; each is called on the training thread, in the order
    the listeners were given (TensorBoard first, the MLflow run last)."""

    #: what a failure warning calls this listener, and the warning's category
    name = "listener"
    warning_category: type[Warning] = ElistimatorWarning

    def failure_note(self) -> str:
        """What a failure warning adds (e.g. where undelivered work is kept)."""
        return "Training goes on."

    def on_setup(self, context: RunContext) -> None:
        """Every ``setup()`` (the first one starts a run)."""

    def on_params(self, params: Mapping[str, Any]) -> None:
        """Params learned while running (the first training batch's size)."""

    def on_train_summary(self, step: int, metrics: Mapping[str, float], summary: bytes | None) -> None:
        """Every ``summary_every_n_steps`` global steps: the training loss, and the serialized
        ``tf.summary`` ops of the model function when it has any."""

    def on_train_end(self, step: int) -> None:
        """The end of a ``train()`` call."""

    def on_validation(self, step: int, metrics: Mapping[str, float], checkpoint: SavedCheckpoint | None) -> None:
        """A ``validate()`` result, about to be committed; ``checkpoint`` is the one saved at the same
        step, if any (its metrics just changed)."""

    def on_evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
        """An ``evaluate(input_fn)`` result."""

    def on_input(self, context: str, describe: Callable[[], DataDescription]) -> None:
        """Data used for ``context`` (training, validation at ``setup()``; evaluation at ``evaluate``):
        ``describe()`` computes its description (a digest of the pipeline; called only by who needs it)."""

    def on_checkpoint(self, checkpoint: SavedCheckpoint) -> None:
        """A checkpoint is about to be committed. Its files may be pruned right after: link them now."""

    def on_branch(self, step: int, dropped: Mapping[int, Mapping[str, float]]) -> None:
        """Training goes on from the restored ``step``: the later validations ``dropped`` (by step)
        belonged to an abandoned branch and are about to be dropped from ``elistimator.json``."""

    def on_commit(self, committed: bool) -> None:
        """``elistimator.json`` now holds what the last ``on_validation``, ``on_checkpoint`` or
        ``on_branch`` announced (``committed`` False: writing it failed, it does not)."""

    def on_stop(self, stop: TrainingStopped) -> None:
        """A listener stopped training (``stop.step``, ``stop.reason``, ``stop.best``)."""

    def on_close(self, status: str, error: str | None) -> None:
        """The end: ``status`` is FINISHED, FAILED or KILLED (``error`` says why)."""


class Listeners(Listener):
    """The listeners of one Elistimator as one: each moment goes to every listener in order; a
    failing call becomes a warning, a ``TrainingStopped`` a stop request (``stop``)."""

    def __init__(self, listeners: Iterable[Listener]):
        self.listeners: list[Listener] = list(listeners)
        self.stop: TrainingStopped | None = None  # the first stop a listener asked for
        self._warned: set[tuple[int, str, type]] = set()

    def on_setup(self, context: RunContext) -> None:
        for listener in self.listeners:
            try:
                listener.on_setup(context)
            except ElistimatorError:
                raise  # a listener's configuration refused: setup() fails before any training
            except Exception as error:  # noqa: BLE001 -- a listener never breaks training
                self._failed(listener, "on_setup", error)

    def on_params(self, params: Mapping[str, Any]) -> None:
        self._each("on_params", lambda listener: listener.on_params(params))

    def on_train_summary(self, step: int, metrics: Mapping[str, float], summary: bytes | None) -> None:
        self._each("on_train_summary", lambda listener: listener.on_train_summary(step, metrics, summary))

    def on_train_end(self, step: int) -> None:
        self._each("on_train_end", lambda listener: listener.on_train_end(step))

    def on_validation(self, step: int, metrics: Mapping[str, float], checkpoint: SavedCheckpoint | None) -> None:
        self._each("on_validation", lambda listener: listener.on_validation(step, metrics, checkpoint))

    def on_evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
        self._each("on_evaluation", lambda listener: listener.on_evaluation(step, metrics))

    def on_input(self, context: str, describe: Callable[[], DataDescription]) -> None:
        self._each("on_input", lambda listener: listener.on_input(context, describe))

    def on_checkpoint(self, checkpoint: SavedCheckpoint) -> None:
        self._each("on_checkpoint", lambda listener: listener.on_checkpoint(checkpoint))

    def on_branch(self, step: int, dropped: Mapping[int, Mapping[str, float]]) -> None:
        self._each("on_branch", lambda listener: listener.on_branch(step, dropped))

    def on_commit(self, committed: bool) -> None:
        self._each("on_commit", lambda listener: listener.on_commit(committed))

    def on_stop(self, stop: TrainingStopped) -> None:
        self._each("on_stop", lambda listener: listener.on_stop(stop))

    def on_close(self, status: str, error: str | None) -> None:
        self._each("on_close", lambda listener: listener.on_close(status, error))

    def _each(self, moment: str, call: Callable[[Listener], None]) -> None:
        for listener in self.listeners:
            try:
                call(listener)
            except TrainingStopped as stop:
                if self.stop is None:
                    self.stop = stop
            except Exception as error:  # noqa: BLE001 -- a listener never breaks training
                self._failed(listener, moment, error)

    def _failed(self, listener: Listener, moment: str, error: Exception) -> None:
        kind = (id(listener), moment, type(error))
        if kind in self._warned:
            return
        self._warned.add(kind)
        warnings.warn(
            f"that {listener.name} call is lost (later ones are still tried): {type(error).__name__}: "
            f"{error}. {listener.failure_note()}",
            listener.warning_category,
            stacklevel=4,
        )
