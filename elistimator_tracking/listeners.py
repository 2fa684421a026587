"""What the Elistimator tells whoever watches a run, at a few named moments.

A validation, a checkpoint and a branch are announced *before* ``elistimator.json`` commits
them, and ``on_commit`` follows the commit: a listener that keeps a durable record (the
tracking journal) writes it first and acts on it after, so a crash in between never leaves
the file holding something its record lacks.

In the spirit of ``tf.train.CheckpointSaverListener`` and Lightning's ``Logger``: the
loops never know who listens. TensorBoard event files (``events.py``) and the MLflow
run (``tracking/listener.py``) are listeners. A listener that fails loses that one
call, with one warning per kind of failure; training goes on.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoints import CheckpointIndex
from .datasets import DataDescription
from .errors import ElistimatorWarning


@dataclass(frozen=True)
class RunContext:
    """What a listener learns at ``setup()``: the model directory, the model and its settings, and
    the checkpoint index as ``elistimator.json`` holds it."""

    model_dir: Path
    params: Mapping[str, Any]
    saver: Mapping[str, Any]  # max_to_keep and the tf.train.Saver arguments
    model_fn: Callable | None  # None for a model loaded with from_disk
    graph: Any  # the tf.Graph
    index: CheckpointIndex


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
    """Override the moments you care about; each is called on the training thread."""

    #: what a failure warning calls this listener, and what it adds (e.g. where work is kept)
    name = "listener"
    warning_category: type[Warning] = ElistimatorWarning

    def failure_note(self) -> str:
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

    def on_close(self, status: str, error: str | None) -> None:
        """The end: ``status`` is FINISHED, FAILED or KILLED (``error`` says why)."""


class Listeners:
    """The listeners of one Elistimator, called in order; a failing call becomes a warning."""

    def __init__(self, listeners: Iterable[Listener]):
        self.listeners: list[Listener] = list(listeners)
        self._warned: set[tuple[int, str, type]] = set()

    def notify(self, moment: str, *args: Any) -> None:
        """Call ``moment`` (a ``Listener`` method name, e.g. ``'on_validation'``) on every listener."""
        if not moment.startswith("on_") or not hasattr(Listener, moment):
            raise AttributeError(f"Listener has no moment {moment!r}")
        for listener in self.listeners:
            try:
                getattr(listener, moment)(*args)
            except Exception as error:  # noqa: BLE001 -- a listener never breaks training
                self._warn(listener, moment, error)

    def _warn(self, listener: Listener, moment: str, error: Exception) -> None:
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
