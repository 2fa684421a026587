"""TensorBoard event files: scalars written from Python at a global step."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

from ._tf import tf


class EventLog:
    """One TensorBoard run directory (``model_dir/train``, ``model_dir/validation``)."""

    def __init__(self, logdir: Path, graph: Optional[tf.Graph] = None):
        self.logdir = logdir
        self._writer = tf.summary.FileWriter(str(logdir), graph=graph)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        summary = tf.Summary(value=[tf.Summary.Value(tag=tag, simple_value=float(value))
                                    for tag, value in values.items()])
        self._writer.add_summary(summary, global_step=step)

    def serialized_summary(self, summary: bytes, step: int) -> None:
        self._writer.add_summary(summary, global_step=step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
