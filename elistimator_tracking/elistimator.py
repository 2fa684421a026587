"""The Elistimator: one object over the parts that train, checkpoint, load and track a model.

The parts: ``loops.py`` (train / evaluate / predict over the graph and its session),
``checkpoint_manager.py`` (save, prune, verify, restore, branches), ``metadata.py``
(``elistimator.json``), ``loading.py`` (new and saved models), and the listeners the
core notifies (``events.py`` for TensorBoard, ``tracking/listener.py`` for MLflow).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import _exit
from ._tf import tf
from .checkpoint_manager import CheckpointManager
from .checkpoints import Selection
from .commits import Commits
from .datasets import described
from .distribute import checked_strategy, is_chief, peer_errors
from .distribute import describe as describe_strategy
from .errors import UsageError
from .events import TensorBoardListener
from .inputs import InputData, InputFn
from .listeners import Listeners, RunContext
from .loading import ModelOrigin, load, new_model
from .loops import Loops, StepWatch
from .metadata import Metadata
from .model_graph import ModelFn
from .progress import metrics_line
from .settings import PathLike, Settings, checked_steps
from .tracking.base import Tracker
from .tracking.listener import TrackingListener, make_tracker


class Elistimator:
    """A TF1 graph model with train/validate/evaluate/predict loops around one session.

    Args:
        model_fn: ``model_fn(features, is_training, params)`` returning
            ``(TrainSpec, EvaluationSpec | None, PredictSpec | None)``; or a ``ModelOrigin``
            (what ``from_disk`` loads, with its own settings).
        model_dir: where checkpoints and TensorBoard events go (``str`` or ``Path``);
            without one, a temporary directory that lives as long as this object.
        params: passed to ``model_fn`` as its third argument.
        session_args: keyword arguments for ``tf.Session`` (``target``, ``config``).
        verbose: progress bars and the metrics line after ``validate()``.
        summary_every_n_steps: training loss (and the model's own ``tf.summary`` ops)
            go to TensorBoard, and ``train/loss`` to the MLflow run, every this many global steps.
        tracking: ``True`` (MLflow at ``MLFLOW_TRACKING_URI``, else MLflow's default
            ``sqlite:///mlflow.db``), a tracking URI, a ``Tracker`` object, or ``False``.
        experiment: the MLflow experiment (default: the model function's name).
        run_name, tags: the MLflow run's name and extra tags.
        distribute: a ``tf.distribute.MirroredStrategy`` or ``MultiWorkerMirroredStrategy``:
            ``model_fn`` runs once per replica, each on its slice of the input function's
            (global) batch; see ``distribute.py`` and the README's "More than one device". In a
            multi-worker job, workers other than the chief write to a temporary directory
            instead of ``model_dir`` and track nothing.
        system_metrics: sample CPU, memory, disk, network and GPU use into the run as
            ``system/<metric>`` every 10 s (MLflow's monitors). Off by default: 8 more metric
            series per run (about 2,900 points an hour) most runs do not need (docs/performance.md).
    """

    def __init__(
        self,
        model_fn: ModelFn | ModelOrigin,
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
    ):
        distribute = checked_strategy(distribute)
        if not is_chief(distribute):  # only the chief of a multi-worker job writes the model and tracks
            model_dir, tracking = None, False
        origin = (
            model_fn
            if isinstance(model_fn, ModelOrigin)
            else new_model(
                model_fn,
                model_dir,
                params,
                Settings.checked(
                    session_args,
                    verbose=verbose,
                    summary_every_n_steps=summary_every_n_steps,
                    tracking=tracking,
                    experiment=experiment,
                    run_name=run_name,
                    tags=tags,
                    distribute=distribute,
                    system_metrics=system_metrics,
                ),
            )
        )
        settings = origin.settings
        self._origin, self._settings, self.verbose, self._closed = origin, settings, settings.verbose, False
        self._model_fn, self._params, self._directory, self._saver = (
            origin.model_fn,
            origin.params,
            origin.directory,
            origin.saver,
        )
        self._writer = origin.writer  # held by a new model; a loaded one takes it at its first write
        self._run = TrackingListener(
            make_tracker(settings.tracking, (origin.recorded_run or {}).get("tracking_uri")),
            settings.experiment or origin.experiment,
            settings.run_name,
            settings.tags,
            origin.recorded_run,
            settings.cache_dir,
            settings.system_metrics,
        )
        self._listeners = Listeners([TensorBoardListener(), self._run])
        self._commits = Commits(self._directory, self._listeners, self._metadata)
        self._checkpoints = CheckpointManager(
            self._directory, origin.index, self._saver.max_to_keep, self._run.checkpoint_store
        )
        self._loops: Loops | None = None
        if origin.step is not None:
            self._restore_saved(origin)

    def _restore_saved(self, origin: ModelOrigin) -> None:
        """Import the saved graph and restore its checkpoint, verified before anything is imported."""
        record = origin.index.records[origin.step]
        try:
            holder = self._checkpoints.holder(record)  # fetched from the run when pruned locally
            if record.local and not origin.verified:
                self._checkpoints.verify(record)
            self._loops = Loops(origin.import_graph(holder), self._settings, restoring=True)
            self._checkpoints.restore_step(self._loops, origin.step, verified=True)
        except BaseException:
            self.close()
            raise

    # -- properties -----------------------------------------------------------------

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
        return self._run.run_record().get("run_id")

    @property
    def tracking_uri(self) -> str | None:
        """Where this Elistimator's run is tracked (None without tracking)."""
        return self._run.run_record().get("tracking_uri") or getattr(self._run.tracker, "tracking_uri", None)

    @property
    def tracker(self) -> Tracker:
        return self._run.tracker

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
    def checkpoints(self) -> dict[int, dict[str, Any]]:
        """``{global_step: {'file': path_prefix, 'metrics': {...}, 'local': bool}}``.

        ``local`` is False once ``max_to_keep`` pruned the files; the entry and its
        metrics stay.
        """
        return self._checkpoints.describe()

    # -- setup and the loops --------------------------------------------------------------

    def setup(
        self,
        train_input_fn: InputFn,
        validation_input_fn: InputFn | None = None,
        train_saver_args: Mapping[str, Any] | None = None,
    ) -> Elistimator:
        """Prepare training (and validation) data; build the graph on the first call.

        Input functions take no argument and return a ``tf.data.Dataset`` of dicts,
        tuples or single tensors. The first call records the input signature and calls
        ``model_fn``; later calls swap the data, which must fit that signature.
        """
        self._require_open()
        saver = self._saver.updated(train_saver_args)
        self._writer.acquire()
        train = InputData(train_input_fn, "training")
        validation = InputData(validation_input_fn, "validation") if validation_input_fn else None
        built_now = self._loops is None
        try:
            if built_now:
                with peer_errors(self._settings.distribute):
                    self._loops = Loops.built(
                        self._model_fn, self._params, train, validation, saver.args, self._settings
                    )
            self._loops.check_data(train, validation)
            if not built_now and saver.args != self._saver.args:
                self._loops.model.replace_saver(saver.args)
            self._loops.use_data(train, validation)
        except BaseException:
            if built_now and self._loops is not None:  # leave nothing half-built behind
                self._loops.close()
                self._loops = None
            raise
        self._saver, self._checkpoints.max_to_keep = saver, saver.max_to_keep
        self._commits.write()
        self._listeners.notify(
            "on_setup",
            RunContext(
                self.model_dir,
                self._params,
                saver.as_params(),
                self._model_fn,
                self._loops.model.graph,
                self._checkpoints.index,
            ),
        )
        if built_now and self._settings.distribute is not None:
            self._listeners.notify("on_params", describe_strategy(self._settings.distribute))
        self._commits.write()  # the run it tracks to
        self._listeners.notify("on_input", train.role, described(train, train_input_fn))
        if validation is not None:
            self._listeners.notify("on_input", validation.role, described(validation, validation_input_fn))
        _exit.keep_open(id(self), self._close)  # a script that never calls close() still ends its run
        return self

    def train(self, steps: int | None = None, *, watch: StepWatch | None = None) -> Elistimator:
        """Train for ``steps`` steps, or to the end of the current epoch; return ``self``.

        Each call continues where the previous one stopped; when the data runs out
        during a ``steps`` call, a new epoch starts and training goes on. ``watch`` sees
        every step and may end training early (the estimator front end's hooks).
        """
        self._require_open()
        if self._loops is None or self._loops.train_stream is None:
            raise UsageError("train() needs setup(train_input_fn, ...) first")
        steps = checked_steps(steps)
        self._checkpoints.start_branch(lambda step, dropped: self._commits.commit("branch", "on_branch", step, dropped))
        with peer_errors(self._settings.distribute):
            self._loops.train(steps, self.verbose, self._listeners, watch)
        return self

    def validate(self, input_fn: InputFn | None = None, *, watch: StepWatch | None = None) -> dict[str, float]:
        """Run the validation data once: ``{metric: value, ..., 'loss': mean loss per example}``.

        ``input_fn``: validate on this data instead of setup's (the estimator front end's
        ``evaluate``); the metrics count as the validation of the current global step either way.
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
        self._commits.commit("validate", "on_validation", step, metrics, saved)
        if self.verbose:
            print(metrics_line(metrics), flush=True)
        return metrics

    def evaluate(
        self, input_fn: InputFn, *, watch: StepWatch | None = None, name: str | None = None
    ) -> dict[str, float]:
        """Evaluate on the data of ``input_fn``; metrics start fresh on every call. With ``name`` the
        run gets them as ``evaluation/<name>/<metric>``."""
        evaluated = []
        metrics = self._require_model("evaluate()").evaluate_input(input_fn, self.verbose, watch, evaluated.append)
        self._listeners.notify(
            "on_evaluation", self.global_step, {f"{name}/{k}": v for k, v in metrics.items()} if name else metrics
        )
        self._listeners.notify("on_input", evaluated[0].role, described(evaluated[0], input_fn))
        return metrics

    def predict(
        self, *inputs: Any, input_fn: InputFn | None = None, **features: Any
    ) -> dict[str, np.ndarray] | Iterator[dict[str, np.ndarray]]:
        """Predict with the PredictSpec's outputs.

        ``predict(input_fn=fn)`` yields one ``{output: array}`` dict per batch.
        ``predict(images=x)`` or ``predict(x)`` runs one batch of arrays through the
        input signature and returns one dict; positional arrays fill, in order, the
        features the outputs need.
        """
        return self._require_model("predict()").predict(inputs, features, input_fn, self.verbose)

    # -- checkpoints ----------------------------------------------------------------

    def save_ckpt(self) -> str:
        """Save a checkpoint at the current global step; return its path prefix.

        Validation metrics of the same global step attach to it, whichever comes first.
        Beyond ``max_to_keep`` (``train_saver_args``, default 5) the oldest checkpoints'
        files are removed; their entries stay in ``checkpoints`` with ``local=False``.
        """
        loops = self._require_model("save_ckpt()")
        self._writer.acquire()
        step = loops.global_step
        self._checkpoints.save(
            loops,
            step,
            uncommit=self._commits.write,
            commit=lambda: self._commits.commit(
                "save", "on_checkpoint", self._checkpoints.saved(step, self._metadata())
            ),
        )
        self._checkpoints.remove_unreferenced_files()  # after listeners linked what they send
        return self._checkpoints.file_of(step)

    def restore_ckpt(self, path_prefix: PathLike) -> Elistimator:
        """Restore the checkpoint at ``path_prefix`` (absolute, or relative to the model directory)."""
        self._checkpoints.restore(self._require_model("restore_ckpt()"), path_prefix)
        return self

    def restore_latest_ckpt(self) -> Elistimator:
        """Restore the checkpoint with the greatest global step."""
        return self._restore("latest")

    def restore_best_ckpt(self, metric: str = "loss", mode: str = "min") -> Elistimator:
        """Restore the checkpoint whose validation ``metric`` is lowest (``mode='min'``) or highest.

        Checkpoints without that metric never win; ties go to the later step.
        """
        return self._restore("best", metric, mode)

    def _restore(self, checkpoint: Selection, metric: str = "loss", mode: str = "min") -> Elistimator:
        loops = self._require_model(f"restore_{checkpoint}_ckpt()")
        self._checkpoints.restore_step(loops, self._checkpoints.select(checkpoint, metric, mode))
        return self

    def register_best(
        self, name: str, metric: str = "loss", mode: str = "min", alias: str | None = "champion", force: bool = False
    ) -> str:
        """Register the best checkpoint (by validation ``metric`` and ``mode``) in the MLflow Model
        Registry as a new version of ``name`` (from the checkpoint's logged model), tagged with its
        step and metrics. ``alias`` moves to it only when it beats the version the alias points at
        on ``metric`` in ``mode`` (a tie keeps the current one; ``force=True`` moves it anyway); an
        ``AliasKeptWarning`` says when it stays. The version is an MLflow Model too
        (``mlflow.pyfunc.load_model``, ``mlflow models serve``). Returns the version number.
        """
        self._require_model("register_best()")
        step = self._checkpoints.select("best", metric, mode)
        return self._run.register(self._checkpoints.saved(step, self._metadata()), name, alias, metric, mode, force)

    def log_artifacts(self, directory: PathLike, artifact_path: str) -> None:
        """Send the files of ``directory`` (e.g. an exported SavedModel) to the run under ``artifact_path``."""
        self._require_model("log_artifacts()")
        self._run.send_directory(Path(directory), artifact_path)

    def _metadata(self) -> Metadata:
        return Metadata(
            graph=self._loops.model.to_names(),
            index=self._checkpoints.index,
            global_step=self.global_step,
            max_to_keep=self._saver.max_to_keep,
            saver_args=self._saver.args,
            tracking=self._run.run_record() or None,
        )

    # -- loading ----------------------------------------------------------------------

    @classmethod
    def from_disk(
        cls,
        model_dir: PathLike,
        checkpoint: Selection = "latest",
        session_args: Mapping[str, Any] | None = None,
        *,
        metric: str = "loss",
        mode: str = "min",
        verbose: bool = True,
        summary_every_n_steps: int = 10,
        tracking: bool | str | Tracker = True,
        experiment: str | None = None,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        cache_dir: PathLike | None = None,
        system_metrics: bool = False,
    ) -> Elistimator:
        """Load a model without the model function.

        ``model_dir`` is a local model directory, ``runs:/<run_id>`` (any checkpoint the
        run logged), ``models:/<name>/<version>`` or ``models:/<name>@<alias>``; remote
        checkpoints are downloaded to ``cache_dir`` (default ``$ELISTIMATOR_CACHE_DIR`` or
        ``~/.cache/elistimator_tracking/downloads``), verified, and reused next time.
        ``checkpoint`` is ``'latest'``, ``'best'`` (by ``metric`` and ``mode``) or a
        global step. ``predict`` and ``evaluate`` work at once; ``setup(...)`` continues
        training from the restored global step, keeping the checkpoint history (later
        checkpoints are dropped, with a warning, once training goes on from an older one),
        and resumes the MLflow run a local directory names (with ``tracking=True``, in the
        store it was tracked to).
        """
        settings = Settings.checked(
            session_args,
            verbose=verbose,
            summary_every_n_steps=summary_every_n_steps,
            tracking=tracking,
            experiment=experiment,
            run_name=run_name,
            tags=tags,
            cache_dir=cache_dir,
            system_metrics=system_metrics,
        )
        return cls(load(model_dir, checkpoint, metric, mode, settings))

    # -- lifecycle ------------------------------------------------------------------

    def close(self) -> None:
        """End the MLflow run as FINISHED; close event files, sessions and data streams.

        The model directory stays. Delivery of what tracking still holds is awaited while
        the store answers (bounded); the rest stays spooled in the model directory.
        """
        self._close("FINISHED")

    def acquire_writer(self) -> None:
        """Become the model directory's one writer (``ModelDirectoryBusy`` while another is): the
        estimator front end takes the directory for each call, as tf.estimator held nothing between calls."""
        self._require_open()
        self._writer.acquire()

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
            self._listeners.notify("on_close", status, error)
            if self._loops is not None:
                if self._loops.train_stream is not None and self._writer.held:  # the run id, if it came late
                    self._commits.write()
                self._loops.close()
        finally:
            self._writer.release()

    def __enter__(self) -> Elistimator:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Leaving the block ends the run: FINISHED, KILLED on Ctrl-C, FAILED (with the error) otherwise."""
        self._close(*_exit.status_of(exc))

    # -- helpers --------------------------------------------------------------------

    def _require_open(self) -> None:
        if self._closed:
            raise UsageError("this Elistimator is closed")

    def _require_model(self, what: str) -> Loops:
        self._require_open()
        if self._loops is None:
            raise UsageError(f"{what} needs a model: call setup(train_input_fn, ...) first")
        return self._loops
