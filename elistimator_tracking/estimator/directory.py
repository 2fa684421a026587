"""The model directory as tf.estimator users and tools read it, beside the Elistimator's own layout.

The Elistimator keeps checkpoints in ``checkpoints/``, training events in ``train/`` and
``elistimator.json``; tf.estimator kept ``model.ckpt-N`` files, the ``checkpoint`` state file,
``graph.pbtxt`` and the training events at the top of ``model_dir``. So that
``tf.train.latest_checkpoint(model_dir)``, ``get_checkpoint_state(model_dir)``, TensorBoard
pointed at ``model_dir`` and warm starts from it keep working, the front end also writes:

- ``model_dir/checkpoint``: every local checkpoint (relative paths ``checkpoints/model-N``), after
  the ``model.ckpt-N`` ones a directory written by tf.estimator already held;
- ``model_dir/graph.pbtxt`` when the graph is built;
- ``model_dir/events.out.tfevents.*``: ``loss`` and ``global_step/sec`` (``TopEvents``).

It also reads a directory tf.estimator wrote (``tf_estimator_checkpoint``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from .._tf import tf
from ..events import EventLog
from ..model_dir import CHECKPOINT_DIR, write_text_atomic

STATE_FILE = "checkpoint"  # tf.train.get_checkpoint_state's file


class Found(NamedTuple):
    """A checkpoint tf.estimator wrote: its path prefix and global step."""

    prefix: str
    step: int


def tf_estimator_checkpoints(model_dir: Path) -> list[str]:
    """The checkpoints tf.estimator listed in ``model_dir/checkpoint`` (not the Elistimator's own), oldest first,
    those whose files are there."""
    try:
        state = tf.train.get_checkpoint_state(str(model_dir))
    except (tf.errors.OpError, ValueError):
        return []
    if state is None:
        return []
    own = (model_dir / CHECKPOINT_DIR).absolute()
    paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    found = []
    for path in paths:
        absolute = Path(path) if os.path.isabs(path) else model_dir / path
        if absolute.parent.absolute() != own and Path(f"{absolute}.index").is_file():
            found.append(str(absolute))
    return found


def tf_estimator_checkpoint(model_dir: Path) -> Found | None:
    """The latest checkpoint tf.estimator wrote in ``model_dir`` (a directory a migrating user brings), if any."""
    prefixes = tf_estimator_checkpoints(model_dir)
    if not prefixes:
        return None
    latest = max(prefixes, key=_step_of)
    return Found(latest, _step_of(latest))


def _step_of(prefix: str) -> int:
    try:
        return int(tf.train.load_variable(prefix, "global_step"))
    except (tf.errors.OpError, ValueError):
        tail = prefix.rsplit("-", 1)[-1]
        return int(tail) if tail.isdigit() else 0


def write_checkpoint_state(model_dir: Path, own: list[str], kept: list[str]) -> None:
    """``model_dir/checkpoint`` listing the tf.estimator checkpoints ``kept`` then the Elistimator's ``own``
    (path prefixes), the last one the latest; paths relative to ``model_dir`` as tf.estimator wrote them."""
    paths = [os.path.relpath(p, model_dir) for p in [*kept, *own]]
    if not paths:
        return
    lines = [f'model_checkpoint_path: "{paths[-1]}"'] + [f'all_model_checkpoint_paths: "{p}"' for p in paths]
    write_text_atomic(model_dir / STATE_FILE, "\n".join(lines) + "\n")


def write_graph(model_dir: Path, graph: tf.Graph) -> None:
    """``model_dir/graph.pbtxt``, as tf.estimator's checkpoint saver wrote it."""
    tf.io.write_graph(graph.as_graph_def(add_shapes=True), str(model_dir), "graph.pbtxt")


class TopEvents:
    """Training scalars at the top of ``model_dir`` (``loss``, ``global_step/sec``), where tf.estimator
    wrote them; the file is opened when first written to."""

    def __init__(self, model_dir: Path):
        self._model_dir = model_dir
        self._log: EventLog | None = None

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self._log is None:
            self._log = EventLog(self._model_dir)
        self._log.scalars(values, step)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
