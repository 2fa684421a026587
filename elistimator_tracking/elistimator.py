"""The Elistimator: one object over the parts that train, checkpoint, load and track a model.

The parts: ``loops.py`` (train / evaluate / predict over the graph and its session),
``checkpoint_manager.py`` (save, prune, verify, restore, branches), ``metadata.py``
(``elistimator.json``), ``loading.py`` (new and saved models), and the listeners the
core notifies (``events.py`` for TensorBoard, ``tracking/listener.py`` for MLflow).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from . import _exit
from .checkpoint_api import CheckpointMethods
from .checkpoint_manager import CheckpointManager
from .checkpoints import KeepBest
from .datasets import described
from .distribute import describe as describe_strategy
from .distribute import is_chief, peer_errors
from .errors import TrainingStopped, UsageError
from .events import TensorBoardListener
from .inputs import InputData, InputFn
from .listeners import Listener, Listeners, RunContext
from .loading import ModelOrigin, new_model
from .loops import Loops, StepWatch, set_up
from .model_graph import ModelFn
from .progress import metrics_line
from .settings import PathLike, Settings, checked_steps
from .tracking.base import Tracker
from .tracking.listener import TrackingListener, make_tracker


class Elistimator(CheckpointMethods):
    """A TF1 graph model with train/validate/evaluate/predict loops around one session, tracked in MLflow.

    The graph is built at the first ``setup()``; every run is an MLflow run (unless ``tracking=False``),
    started there and ended by ``close()`` or by leaving a ``with`` block. The keyword options
    (verbose, summary_every_n_steps, tracking, experiment, run_name, tags, distribute,
    system_metrics, listeners, store_retention) are each declared once, with their default and
    check, in ``settings.Settings``; with ``distribute`` in a multi-worker job, workers other than
    the chief write to a temporary directory and track nothing.

    Args:
        model_fn: ``model_fn(features, is_training, params)`` returning
            ``(TrainSpec, EvaluationSpec | None, PredictSpec | None)``.
        model_dir: where checkpoints and TensorBoard events go (``str`` or ``Path``);
            without one, a temporary directory that lives as long as this object.
        params: passed to ``model_fn`` as its third argument (and logged as the run's params).
        session_args: keyword arguments for ``tf.Session`` (``target``, ``config``).

    Raises:
        InvalidTypeError: ``model_fn`` is not callable, ``params`` is not a dict, an option has the
            wrong type (the message names it and what it expects).
        InvalidValueError: an option has a value it refuses (``summary_every_n_steps=0``).
        ModelDirectoryError: ``model_dir`` is a file, holds links that leave it, or already holds
            another model's checkpoints (load those with ``from_disk``).
        ModelDirectoryBusy: another Elistimator or ``sync`` writes ``model_dir``.
        NotSupportedError: ``distribute`` is a strategy the package does not run.
        MissingDependencyError: ``system_metrics=True`` without ``psutil``.
    """

    def __init__(
        self,
        model_fn: ModelFn,
        model_dir: PathLike | None = None,
        params: dict | None = None,
        session_args: Mapping[str, Any] | None = None,
        *,
        verbose: bool = True,
        summary_every_n_steps: int = 10,
        tracking: bool | str | Tracker = True,
        experiment: str | None = None,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        distribute: Any = None,
        system_metrics: bool = False,
        listeners: Sequence[Listener] | None = None,
        store_retention: KeepBest | None = None,
    ):
        settings = Settings.checked(**Settings.given(locals()))
        if not is_chief(settings.distribute):  # only the chief of a multi-worker job writes the model and tracks
            model_dir, settings = None, replace(settings, tracking=False)
        self._start(new_model(model_fn, model_dir, params, settings))

    def _start(self, origin: ModelOrigin) -> None:
        """Assemble the parts for ``origin`` (a new model, or one ``from_disk`` loaded)."""
        settings = origin.settings
        self._origin, self._settings, self.verbose, self._closed = origin, settings, settings.verbose, False
        self._model_fn, self._params, self._directory, self._saver = (
            origin.model_fn,
            origin.params,
            origin.directory,
            origin.saver,
        )
        self._writer = origin.writer  # held by a new model; a loaded one takes it at its first write
        recorded = origin.recorded_run
        self._run = TrackingListener(
            make_tracker(settings.tracking, recorded.tracking_uri if recorded else None),
            settings.experiment or origin.experiment,
            settings.run_name,
            settings.tags,
            recorded,
            settings.cache_dir,
            settings.system_metrics,
            settings.store_retention,
        )
        self._listeners = Listeners([TensorBoardListener(), *settings.listeners, self._run])
        self._stopped: TrainingStopped | None = None
        self._commits = origin.commits(self._listeners, self._metadata)
        self._checkpoints = CheckpointManager(
            self._directory, origin.index, self._saver.max_to_keep, self._run.checkpoint_store
        )
        self._loops: Loops | None = None
        if origin.step is not None:
            try:
                self._loops = origin.restored(self._checkpoints)
            except BaseException:
                self.close()
                raise

    # -- setup and the loops --------------------------------------------------------------

    def setup(
        self,
        train_input_fn: InputFn,
        validation_input_fn: InputFn | None = None,
        train_saver_args: Mapping[str, Any] | None = None,
    ) -> Elistimator:
        """Prepare training (and validation) data; build the graph on the first call; start the run.

        Input functions take no argument and return a ``tf.data.Dataset`` of dicts, tuples (keyed
        ``0, 1, ...``) or single tensors (keyed ``0``), batched. The first call records the input
        signature and calls ``model_fn``; later calls swap the data, which must fit that signature.
        The run records each input function's data under its name (``named_input`` gives another).

        Args:
            train_input_fn: the training data; one pass is an epoch.
            validation_input_fn: the data ``validate()`` reads, or None.
            train_saver_args: ``tf.train.Saver`` arguments; ``max_to_keep`` (default 5, None keeps
                all) is how many checkpoints keep their files locally.

        Returns:
            This Elistimator.

        Raises:
            UsageError: after ``close()``.
            InvalidTypeError: an input function does not return a dataset, ``model_fn`` returns
                something other than the three specs, or a spec field has the wrong type.
            InvalidValueError: data that does not fit the recorded signature, unbatched data, an
                unknown saver argument, a listener refusing its configuration (``EarlyStopping``
                monitoring a metric ``validate()`` does not return).
            ModelDirectoryBusy: another writer holds the model directory.
            ModelDirectoryChanged: another writer committed to it since it was loaded.
        """
        self._require_open()
        saver = self._saver.updated(train_saver_args)
        self._commits.acquire()  # the writer lock; ModelDirectoryChanged if another writer committed since
        train = InputData(train_input_fn, "training")
        validation = InputData(validation_input_fn, "validation") if validation_input_fn else None
        built_now = self._loops is None
        with peer_errors(self._settings.distribute):
            self._loops = set_up(
                self._loops,
                self._model_fn,
                self._params,
                train,
                validation,
                saver.args,
                self._saver.args,
                self._settings,
            )
        self._saver, self._checkpoints.max_to_keep = saver, saver.max_to_keep
        self._commits.write()
        loops = self._loops
        self._listeners.on_setup(
            RunContext(
                self.model_dir,
                self._params,
                saver.as_params(),
                self._model_fn,
                loops.model.graph,
                self._checkpoints.index,
                loops.validation_metrics,
            )
        )
        if built_now and self._settings.distribute is not None:
            self._listeners.on_params(describe_strategy(self._settings.distribute))
        self._commits.write()  # the run it tracks to
        self._listeners.on_input(train.role, described(train))
        if validation is not None:
            self._listeners.on_input(validation.role, described(validation))
        _exit.keep_open(id(self), self._close)  # a script that never calls close() still ends its run
        return self

    def train(self, steps: int | None = None, *, watch: StepWatch | None = None) -> Elistimator:
        """Train for ``steps`` steps, or to the end of the current epoch.

        Each call continues where the previous one stopped; when the data runs out during a ``steps``
        call, a new epoch starts and training goes on. After a restore of an older checkpoint, the
        first step drops the later checkpoints and validations (``CheckpointsDroppedWarning``).

        Args:
            steps: how many steps (a positive int), or None: to the end of the current epoch.
            watch: sees every step and may end training early (the estimator front end's hooks).

        Returns:
            This Elistimator (``est.train().validate()``).

        Raises:
            UsageError: before ``setup()``, or after ``close()``.
            TrainingStopped: a listener stopped training at an earlier moment (``stopped`` says why).
            DivergedError: the training loss became NaN or infinite.
            InvalidTypeError: ``steps`` is not an int.
            InvalidValueError: ``steps`` is below 1, or the training data yields no batch.
            WorkerLostError: a worker of a multi-worker job stopped answering.
        """
        self._require_open()
        if self._loops is None or self._loops.train_stream is None:
            raise UsageError("train() needs setup(train_input_fn, ...) first")
        steps = checked_steps(steps)
        if self._stopped is not None:
            raise self._stopped
        self._checkpoints.start_branch(
            lambda step, dropped: self._commits.commit("branch", lambda: self._listeners.on_branch(step, dropped))
        )
        try:
            with peer_errors(self._settings.distribute):
                self._loops.train(steps, self.verbose, self._listeners, watch)
        finally:
            self._take_stop()
        return self

    def restart_training(self) -> Elistimator:
        """Begin the training data anew from its first batch, without calling its input function
        again (the estimator front end: ``train()`` with the same ``input_fn`` as last time)."""
        self._require_model("restart_training()").restart_training()
        return self

    def _take_stop(self) -> None:
        """A stop a listener asked for during the last moment: kept (the next ``train()`` raises it)
        and announced (the MLflow run records it)."""
        stop, self._listeners.stop = self._listeners.stop, None
        if stop is not None and self._stopped is None:
            self._stopped = stop.at(self.global_step)
            self._listeners.on_stop(self._stopped)

    def validate(self, input_fn: InputFn | None = None, *, watch: StepWatch | None = None) -> dict[str, float]:
        """Run the validation data once; the result is the validation of the current global step.

        The loss is the exact mean over examples; metrics start fresh on every call. The result
        attaches to the checkpoint of the same step (saved before or after), goes to the run as
        ``validation/<metric>`` and is printed as one line when ``verbose``.

        Args:
            input_fn: validate on this data instead of setup's (the estimator front end's ``evaluate``).
            watch: sees every step (the estimator front end's hooks).

        Returns:
            ``{metric: value, ..., 'loss': mean loss per example}``.

        Raises:
            UsageError: before ``setup()``, without an ``EvaluationSpec`` or validation data, or after
                ``close()``.
            InvalidValueError: the validation data yields no batch.
        """
        self._require_open()
        if self._loops is None:
            raise UsageError("validate() needs a validation_input_fn: pass one to setup(...)")
        with peer_errors(self._settings.distribute):
            metrics = (
                self._loops.evaluate_input(input_fn, self.verbose, watch)
                if input_fn is not None
                else self._loops.validate(self.verbose, watch)
            )
        step = self.global_step
        self._checkpoints.index.record_validation(step, metrics)
        saved = self._checkpoints.saved(step, self._metadata()) if step in self._checkpoints.index.records else None
        self._commits.commit("validate", lambda: self._listeners.on_validation(step, metrics, saved))
        self._take_stop()
        if self.verbose:
            print(metrics_line(metrics), flush=True)
        return metrics

    def evaluate(
        self, input_fn: InputFn, *, watch: StepWatch | None = None, name: str | None = None
    ) -> dict[str, float]:
        """Evaluate on the data of ``input_fn``; metrics start fresh on every call.

        Args:
            input_fn: the data, fitting the input signature.
            watch: sees every step (the estimator front end's hooks).
            name: the run gets the metrics as ``evaluation/<name>/<metric>`` (else ``evaluation/<metric>``).

        Returns:
            ``{metric: value, ..., 'loss': mean loss per example}``.

        Raises:
            UsageError: without a model (``setup()`` or ``from_disk``) or an ``EvaluationSpec``, or
                after ``close()``.
            InvalidValueError: data that does not fit the signature, or yields no batch.
        """
        evaluated: list[InputData] = []
        metrics = self._require_model("evaluate()").evaluate_input(input_fn, self.verbose, watch, evaluated.append)
        self._listeners.on_evaluation(
            self.global_step, {f"{name}/{k}": v for k, v in metrics.items()} if name else metrics
        )
        self._listeners.on_input(evaluated[0].role, described(evaluated[0]))
        self._take_stop()
        return metrics

    def predict(
        self, *inputs: Any, input_fn: InputFn | None = None, watch: StepWatch | None = None, **features: Any
    ) -> dict[str, np.ndarray] | Iterator[dict[str, np.ndarray]]:
        """Predict with the PredictSpec's outputs.

        ``predict(input_fn=fn)`` yields one ``{output: array}`` dict per batch. ``predict(images=x)``
        or ``predict(x)`` runs one batch of arrays through the input signature and returns one dict;
        positional arrays fill, in order, the features the outputs need (``prediction_features``).
        Arrays keep their batch dimension; numbers of the same kind are cast to the signature's dtype.

        Args:
            *inputs: arrays for the features the outputs need, in signature order.
            input_fn: an input function whose batches are predicted one by one.
            watch: with ``input_fn``, sees every batch's step and may end the prediction (the
                estimator front end's hooks).
            **features: arrays by feature name.

        Returns:
            One ``{output: array}`` dict, or a generator of them (``input_fn``).

        Raises:
            UsageError: without a model or a ``PredictSpec``, or after ``close()``.
            InvalidValueError: a feature the signature lacks, a missing one, a shape that does not
                fit, a dtype of another kind, or both forms at once (the message shows the signature).
            InvalidTypeError: an input function passed positionally.
        """
        return self._require_model("predict()").predict(inputs, features, input_fn, self.verbose, watch)

    # -- loading (from_disk is checkpoint_api.py's) -----------------------------------------

    @classmethod
    def _from_origin(cls, origin: ModelOrigin) -> Elistimator:
        """An Elistimator of a model ``loading.py`` found (``from_disk``; the estimator front end's
        ``continued_model``)."""
        estimator = cls.__new__(cls)
        estimator._start(origin)
        return estimator

    # -- lifecycle ------------------------------------------------------------------

    def close(self) -> None:
        """End the MLflow run as FINISHED; close event files, sessions and data streams.

        The model directory stays. Delivery of what tracking still holds is awaited while the store
        answers (at most 60 s); the rest stays in the model directory's journal, for the next run
        there or ``sync``. Closing twice does nothing.
        """
        self._close("FINISHED")

    def acquire_writer(self) -> None:
        """Become the model directory's one writer: ``ModelDirectoryBusy`` while another is,
        ``ModelDirectoryChanged`` when another committed since this one loaded or last wrote it (load
        it again). The estimator front end takes the directory for each call, as tf.estimator held
        nothing between calls."""
        self._require_open()
        self._commits.acquire()

    def release_writer(self) -> None:
        """Let another writer have the model directory until this one's next writing call
        (``acquire_writer``, ``setup`` and ``save_ckpt`` take it again); ``close()`` then writes nothing."""
        self._writer.release()

    def _close(self, status: str, error: str | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        _exit.closed(id(self))
        try:
            _exit.ending(self._listeners.on_close, status, error)  # Ctrl-C meanwhile: KILLED
            if self._loops is not None:
                if self._loops.train_stream is not None and self._writer.held:  # the run id, if it came late
                    self._commits.write()
                self._loops.close()
        finally:
            self._writer.release()

    def __enter__(self) -> Elistimator:
        return self

    def __exit__(self, _type: Any, exc: BaseException | None, _traceback: Any) -> None:
        """Leaving the block ends the run: FINISHED (also after a ``TrainingStopped``), KILLED on Ctrl-C,
        FAILED (with the error) otherwise."""
        self._close(*_exit.status_of(exc))
