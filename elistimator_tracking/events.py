"""TensorBoard event files, written by a listener: ``model_dir/train`` and ``model_dir/validation``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ._tf import tf
from .listeners import Listener, RunContext, SavedCheckpoint
from .model_dir import refuse_links

TRAIN_DIR = "train"
VALIDATION_DIR = "validation"


class EventLog:
    """One TensorBoard run directory: scalars written from Python at a global step."""

    def __init__(self, logdir: Path, graph: tf.Graph | None = None):
        self._writer = tf.summary.FileWriter(str(logdir), graph=graph)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        summary = tf.Summary(
            value=[tf.Summary.Value(tag=tag, simple_value=float(value)) for tag, value in values.items()]
        )
        self._writer.add_summary(summary, global_step=step)

    def serialized_summary(self, summary: bytes, step: int) -> None:
        self._writer.add_summary(summary, global_step=step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class TensorBoardListener(Listener):
    """The training loss (and the model's ``tf.summary`` ops) and every validation metric at the
    global step; the train directory also gets the graph. Files are opened when first needed."""

    name = "TensorBoard"

    def __init__(self) -> None:
        self._context: RunContext | None = None
        self._train: EventLog | None = None
        self._validation: EventLog | None = None

    def on_setup(self, context: RunContext) -> None:
        self._context = context

    def on_train_summary(self, step: int, metrics: Mapping[str, float], summary: bytes | None) -> None:
        self._train_log().scalars(metrics, step)
        if summary is not None:
            self._train_log().serialized_summary(summary, step)

    def on_train_end(self, step: int) -> None:
        self._train_log().flush()

    def _train_log(self) -> EventLog:
        if self._train is None:
            self._train = EventLog(self._logdir(TRAIN_DIR), graph=self._set_up().graph)
        return self._train

    def _logdir(self, name: str) -> Path:
        """``model_dir/name``; a link there (or the folder a link) is refused: events never leave the directory."""
        model_dir = self._set_up().model_dir
        return refuse_links(model_dir, model_dir / name)

    def _set_up(self) -> RunContext:
        assert self._context is not None, "a listener's moments come after on_setup"
        return self._context

    def on_validation(self, step: int, metrics: Mapping[str, float], checkpoint: SavedCheckpoint | None) -> None:
        if self._validation is None:
            self._validation = EventLog(self._logdir(VALIDATION_DIR))
        self._validation.scalars(metrics, step)
        self._validation.flush()

    def on_close(self, status: str, error: str | None) -> None:
        for log in (self._train, self._validation):
            if log is not None:
                log.close()
