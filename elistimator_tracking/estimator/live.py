"""The model underneath an ``Estimator``: an Elistimator kept between calls, the directory taken only during one.

tf.estimator held nothing between calls: each ``train``/``evaluate``/``predict`` built a graph,
restored the directory's latest checkpoint and closed its session. The front end keeps one
Elistimator (graph, session, MLflow run) between calls, which is what makes repeated calls fast,
and keeps tf.estimator's contract on disk:

- the model directory's writer lock is taken for the duration of a call (``call``) and released
  after it, so a second Estimator on the same ``model_dir`` (a notebook re-running a cell, a new
  Estimator to evaluate) works, while two calls never write at once (``ModelDirectoryBusy``);
- at the start of each call, a commit of another writer since this Estimator's last call
  (``ModelDirectoryChanged``: a new generation of ``elistimator.json``, ``commits.py``) makes its view
  stale: the Elistimator is closed (writing nothing)
  and a new one is opened on the directory, so the call starts from the directory's latest checkpoint
  as tf.estimator's would;
- a directory tf.estimator wrote (``model.ckpt-N``, no ``elistimator.json``) goes on from its latest
  checkpoint; with no checkpoint at all, the model starts from its initial (or warm-started) weights.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from .._tf import tf
from ..elistimator import Elistimator
from ..errors import InvalidValueError, ModelDirectoryBusy, ModelDirectoryChanged, ModelDirectoryError, UsageError
from ..inputs import InputSignature
from ..loading import ModelOrigin, continued_model, new_model
from ..metadata import METADATA_FILE
from ..model_dir import write_json_atomic
from ..settings import Settings
from . import directory as layout_files
from .inputs import Layout, flat_input_fn, matching, placeholder_input_fn
from .model import EstimatorModel
from .spec import ModeKeys
from .warm_start import WarmStartSettings

LAYOUT_FILE = "estimator.json"  # how (features, labels) were flattened; lets predict() come first


class LiveModel:
    """The Elistimator of one Estimator, opened on ``model_dir`` (a temporary directory when None)."""

    def __init__(
        self,
        model: EstimatorModel,
        model_dir: str | None,
        params: Mapping[str, Any],
        settings: Settings,
        warm_start: WarmStartSettings | None,
    ):
        self.model, self.params, self.warm_start = model, params, warm_start
        given = Path(model_dir).expanduser().absolute() if model_dir is not None else None
        self.found = layout_files.tf_estimator_checkpoint(given) if given is not None else None
        if given is not None and self.found is not None and not (given / METADATA_FILE).is_file():
            # the first run says where it came from
            settings = replace(
                settings,
                tags={
                    "estimator.continued_from": self.found.prefix,
                    "estimator.continued_from_step": str(self.found.step),
                    **settings.tags,
                },
            )
        self.settings = settings
        self.keep: int | None = None  # how many checkpoints stay on disk; the Estimator sets it
        origin = (
            continued_model(model, model_dir, params, settings)
            if model_dir is not None
            else new_model(model, None, params, settings)
        )
        self.path = origin.directory.path
        self.temporary = origin.temporary  # the temporary model_dir lives as long as the Estimator
        self._depth = 0  # calls in progress (train_and_evaluate evaluates within train)
        self._open(origin)
        self.elistimator.release_writer()  # a new model's directory was taken at once: hold it per call only

    def _open(self, origin: ModelOrigin) -> None:
        self.elistimator = Elistimator._from_origin(origin)
        self.recorded = origin.metadata.graph if origin.metadata is not None else None
        self.layout: Layout | None = self._read_layout()
        self.built = False
        self.provisional = False  # built for evaluation or prediction, without labels: rebuilt to train
        self.stale = False  # weights not the directory's (another model's checkpoint was restored)
        self.train_input_fn: Callable | None = None

    # -- one call -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def call(self) -> Iterator[Elistimator]:
        """Be the directory's writer for one call, starting from what the directory holds now (a call within
        a call, e.g. train_and_evaluate's evaluation after a save, is part of it)."""
        if self._depth:
            self._depth += 1
            try:
                yield self.elistimator
            finally:
                self._depth -= 1
            return
        try:
            self.elistimator.acquire_writer()
        except ModelDirectoryChanged:  # another writer committed since this Estimator's last call
            self.stale = True
        self._depth = 1
        try:
            if self.stale:
                self.reopen()
            yield self.elistimator
        finally:
            self._depth = 0
            self.elistimator.release_writer()

    def reopen(self) -> None:
        """Close the Elistimator (writing nothing) and open a new one on what the directory holds now."""
        self.elistimator.release_writer()
        self.elistimator.close()  # writes nothing: it is not the writer
        self._open(continued_model(self.model, self.path, self.params, self.settings))
        self.elistimator.acquire_writer()

    def prepare_close(self) -> None:
        """Before the Elistimator closes: it writes its record only if this Estimator's view is the
        directory's (no other writer committed since its last call, none writing now)."""
        try:
            self.elistimator.acquire_writer()
        except (ModelDirectoryBusy, ModelDirectoryChanged):  # another writer is in a call, or committed since
            return
        if self.stale:
            self.elistimator.release_writer()

    def graph(self) -> tf.Graph:
        """The model graph (a call builds it first)."""
        graph = self.elistimator.graph
        assert graph is not None, "the graph is built at the start of a call"
        return graph

    def predictions(self, input_fn: Callable, watch: Any) -> Iterator[dict[str, np.ndarray]]:
        """The batches of predictions for ``input_fn`` (an Elistimator input function), ``watch`` seeing each."""
        return cast(Iterator[dict[str, np.ndarray]], self.elistimator.predict(input_fn=input_fn, watch=watch))

    # -- building and restoring ---------------------------------------------------------------------

    def setup(self, input_fn: Callable) -> None:
        """Set up ``input_fn``'s data; the first time, build the graph (warm-started when the directory
        holds no checkpoint) and restore the directory's latest checkpoint."""
        start = self.start_checkpoint()
        if not self.built:
            self.model.warm_start = self.warm_start if start is None else None
        self.elistimator.setup(input_fn, train_saver_args={"max_to_keep": self.keep})
        if self.built:
            return
        self.built = True
        write_json_atomic(self.path / LAYOUT_FILE, {"layout": self.trained_layout().to_json()})
        layout_files.write_graph(self.path, self.elistimator.graph)
        if start is not None:
            self.elistimator.restore_ckpt(start)
        else:
            self._run_init_fn()
        self._use_scaffold_saver(input_fn)

    def reading_fn(self, input_fn: Callable, mode: str) -> Callable:
        """The Elistimator input function over ``input_fn`` for evaluation or prediction; the graph is built first
        (from the recorded signature of a trained model, else from this data: to predict, PREDICT alone)."""
        predicting, config = mode == ModeKeys.PREDICT, self.model.config
        role = "prediction" if predicting else "evaluation"
        fn = flat_input_fn(
            input_fn,
            mode,
            self.params,
            config,
            drop_labels=predicting,
            found=lambda layout: matching(layout, self.trained_layout(), role),
            dtypes=self.dtypes,
        )
        if not self.built and not self.build_from_record():
            self.model.predict_only = predicting  # labels are not at hand: only PREDICT must build
            try:
                self.setup(
                    flat_input_fn(input_fn, mode, self.params, config, drop_labels=predicting, found=self.learn_layout)
                )
            finally:
                self.model.predict_only = False
            self.provisional = predicting
        return fn

    def build_from_record(self) -> bool:
        """Build the graph from the recorded input signature (a trained model, predict or evaluate first);
        False when nothing is recorded."""
        if self.recorded is None or self.layout is None or not self.elistimator.checkpoints:
            return False
        signature = InputSignature.from_json(self.recorded["signature"])
        self.setup(placeholder_input_fn({f.key: (f.dtype, f.shape) for f in signature}))
        return True

    def start_checkpoint(self) -> str | None:
        """The checkpoint a call starts from: the latest of the Elistimator's or, when later, of tf.estimator's."""
        checkpoints = self.elistimator.checkpoints
        own = max(checkpoints, default=None)
        if self.found is not None and (own is None or self.found.step > own):
            return self.found.prefix
        return checkpoints[own]["file"] if own is not None else None

    def restore_for_call(self, checkpoint_path: str | None) -> bool:
        """Restore ``checkpoint_path`` for one call (none: the weights are the latest checkpoint's already);
        whether it is one of this model's own checkpoints."""
        if checkpoint_path is None:
            return True
        path = str(checkpoint_path)
        if not tf.io.gfile.exists(path + ".index"):
            raise InvalidValueError(f"The passed save_path is not a valid checkpoint: {path}")
        own = any(Path(c["file"]) == Path(path).absolute() for c in self.elistimator.checkpoints.values())
        self.elistimator.restore_ckpt(path)
        return own

    def restore_after_call(self, checkpoint_path: str | None) -> None:
        """After a call on ``checkpoint_path``: the latest checkpoint's weights again, or (no checkpoint to go
        back to) a new model at the next call."""
        if checkpoint_path is None:
            return
        latest = self.start_checkpoint()
        if latest is None:
            self.stale = True
        else:
            self.elistimator.restore_ckpt(latest)

    def latest_step(self) -> int:
        """The global step a call starts from."""
        if self.built:
            return self.elistimator.global_step
        start = self.start_checkpoint()
        return int(tf.train.load_variable(start, "global_step")) if start is not None else 0

    def _run_init_fn(self) -> None:
        """``Scaffold(init_fn=...)`` of the TRAIN spec, called when the model starts from initial weights."""
        spec = self.model.specs.get(ModeKeys.TRAIN)
        if spec is not None and spec.scaffold.init_fn is not None:
            spec.scaffold.init_fn(self.elistimator.session)

    def _use_scaffold_saver(self, input_fn: Callable) -> None:
        """``Scaffold(saver=...)``: its ``max_to_keep`` decides how many checkpoints stay on disk."""
        spec = self.model.specs.get(ModeKeys.TRAIN)
        saver = spec.scaffold.saver if spec is not None else None
        if saver is not None and (saver.saver_def.max_to_keep or None) != self.keep:
            self.keep = saver.saver_def.max_to_keep or None
            self.elistimator.setup(input_fn, train_saver_args={"max_to_keep": self.keep})

    # -- the layout of (features, labels) -------------------------------------------------------------

    def trained_layout(self) -> Layout:
        if self.layout is None:
            raise UsageError("the layout of the input data is not known yet")
        return self.layout

    def learn_layout(self, layout: Layout) -> None:
        if self.layout is None or (not self.built and not self.elistimator.checkpoints):
            self.layout = layout
        else:
            matching(layout, self.layout, "training")

    def _read_layout(self) -> Layout | None:
        path = self.path / LAYOUT_FILE
        if not path.is_file():
            return None
        try:
            return Layout.from_json(json.loads(path.read_text(encoding="utf-8"))["layout"])
        except (ValueError, KeyError, TypeError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ModelDirectoryError(
                f"{path} is corrupt or truncated ({type(error).__name__}: {error}); it is not the layout "
                "of (features, labels) this package writes"
            ) from None

    # -- what the directory holds --------------------------------------------------------------------

    def write_checkpoint_state(self) -> None:
        """``model_dir/checkpoint`` for tf.estimator's readers: tf.estimator's checkpoints, then the local ones."""
        own = [c["file"] for _, c in sorted(self.elistimator.checkpoints.items()) if c["local"]]
        layout_files.write_checkpoint_state(self.path, own, layout_files.tf_estimator_checkpoints(self.path))

    def dtypes(self) -> dict[str, str]:
        """``{flat key: dtype}`` the built graph reads (empty before it is built)."""
        if not self.built:
            return {}
        return {key: text.split()[0] for key, text in self.elistimator.input_signature.items()}
