"""The Elistimator: setup, the train/validate/evaluate loops and prediction."""

from __future__ import annotations

import inspect
import math
import os
import tempfile
import traceback
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple, Union

import numpy as np

from ._faults import crash_point
from ._tf import new_session, tf
from .checkpoints import CheckpointIndex, CheckpointRecord, best_step, latest_step
from .events import EventLog
from .inputs import Batch, BatchStream, InputFn, batch_size, one_off_batch
from .model_dir import ModelDirectory, ModelDirectoryError, link_tree
from .model_graph import ModelFn, ModelGraph
from .progress import metrics_line, progress_bar
from . import tracking as tracking_store
from .tracking.base import NullTracker, Tracker, TrackingWarning, make_tracker
from .tracking.run_info import flatten_params, mlflow_name, provenance_tags, version_tags
from .tracking.spool import SPOOL_DIR

PathLike = Union[str, os.PathLike]
SESSION_ARGS = ("target", "config")
DEFAULT_MAX_TO_KEEP = 5


class Elistimator:
    """A TF1 graph model with train/validate/evaluate/predict loops around one session.

    Args:
        model_fn: ``model_fn(features, is_training, params)`` returning
            ``(TrainSpec, EvaluationSpec | None, PredictSpec | None)``.
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
    """

    def __init__(self, model_fn: ModelFn, model_dir: Optional[PathLike] = None, params: Optional[dict] = None,
                 session_args: Optional[Mapping[str, Any]] = None, *, verbose: bool = True,
                 summary_every_n_steps: int = 10, tracking: Union[bool, str, Tracker] = True,
                 experiment: Optional[str] = None, run_name: Optional[str] = None,
                 tags: Optional[Mapping[str, str]] = None):
        if not callable(model_fn):
            raise TypeError(f"model_fn must be callable as model_fn(features, is_training, params), "
                            f"got {type(model_fn).__name__}")
        if params is not None and not isinstance(params, Mapping):
            raise TypeError(f"params must be a dict or None, got {type(params).__name__}")
        self._session_args = _checked_session_args(session_args)
        if isinstance(summary_every_n_steps, bool) or not isinstance(summary_every_n_steps, int) \
                or summary_every_n_steps < 1:
            raise ValueError(f"summary_every_n_steps must be a positive int, got {summary_every_n_steps!r}")
        self._model_fn = model_fn
        self._params = dict(params or {})
        self._temporary_dir: Optional[tempfile.TemporaryDirectory] = None
        _, run_name, tags = _checked_tracking_args(experiment, run_name, tags)
        self._init_state(self._prepare_model_dir(model_dir), verbose, summary_every_n_steps)
        self._refuse_existing_model()
        self._configure_tracking(tracking, experiment or getattr(model_fn, "__name__", "model_fn"), run_name, tags,
                                 recorded=None)

    def _init_state(self, model_dir: Path, verbose: bool, summary_every_n_steps: int) -> None:
        self._model_dir = model_dir
        self._directory = ModelDirectory(model_dir)
        self.verbose = verbose
        self.summary_every_n_steps = summary_every_n_steps
        self._model: Optional[ModelGraph] = None
        self._session: Optional[tf.Session] = None
        self._train_stream: Optional[BatchStream] = None
        self._validation_stream: Optional[BatchStream] = None
        self._train_events: Optional[EventLog] = None
        self._validation_events: Optional[EventLog] = None
        self._index = CheckpointIndex()
        self._max_to_keep: Optional[int] = DEFAULT_MAX_TO_KEEP
        self._saver_args: Dict[str, Any] = {}
        self._step = 0
        self._restored_step: Optional[int] = None  # set by a restore until training moves on
        self._train_calls = 0
        self._epoch_position = 0
        self._lengths: Dict[str, int] = {}
        self._closed = False
        self._tracker: Tracker = NullTracker()
        self._tracking_started = False
        self._tracking_failed = False
        self._tracking_warned: set = set()
        self._batch_size_logged = False
        self._cache_dir: Optional[PathLike] = None

    def _configure_tracking(self, tracking: Union[bool, str, Tracker], experiment: str, run_name: Optional[str],
                            tags: Dict[str, str], recorded: Optional[Mapping[str, Any]]) -> None:
        """Choose the tracker; ``recorded`` is the run a model directory names (to resume it)."""
        self._tracker = make_tracker(tracking, recorded.get("tracking_uri") if recorded else None)
        self._experiment, self._run_name, self._run_tags = experiment, run_name, tags
        self._tracking_resume = dict(recorded) if recorded else None

    def _refuse_existing_model(self) -> None:
        """Never overwrite the checkpoint history of another model in the same directory."""
        if not self._directory.has_metadata():
            return
        try:
            steps = CheckpointIndex.from_json(self._directory.read_metadata()).steps()
        except ModelDirectoryError as error:
            raise FileExistsError(f"model_dir {str(self._model_dir)!r} holds an unreadable Elistimator model "
                                  f"({error}); use another directory") from None
        if steps:
            raise FileExistsError(f"model_dir {str(self._model_dir)!r} already holds an Elistimator model with "
                                  f"checkpoints at steps {steps}; continue it with "
                                  f"Elistimator.from_disk({str(self._model_dir)!r}) or use an empty directory")

    # -- properties -----------------------------------------------------------------

    @property
    def model_dir(self) -> Path:
        return self._model_dir

    @property
    def graph(self) -> Optional[tf.Graph]:
        """The model graph (None until ``setup()`` built it)."""
        return self._model.graph if self._model else None

    @property
    def session(self) -> Optional[tf.Session]:
        """The session running the model graph (None until ``setup()``)."""
        return self._session

    @property
    def global_step(self) -> int:
        if self._model is None:
            return 0
        return int(self._session.run(self._model.global_step))

    @property
    def run_id(self) -> Optional[str]:
        """The MLflow run this Elistimator tracks to (None before ``setup()``, without tracking,
        or while the store has not answered yet)."""
        return self._run_record().get("run_id")

    @property
    def tracking_uri(self) -> Optional[str]:
        """Where this Elistimator's run is tracked (None without tracking)."""
        return self._run_record().get("tracking_uri") or getattr(self._tracker, "tracking_uri", None)

    @property
    def tracker(self) -> Tracker:
        return self._tracker

    def _run_record(self) -> Dict[str, Any]:
        """The run this Elistimator tracks to: the started tracker's, else the one the model directory names."""
        return dict(self._tracker.describe() or self._tracking_resume or {})

    @property
    def input_signature(self) -> Dict[Any, str]:
        """``{feature: 'dtype (shape)'}`` as recorded from the training data."""
        model = self._require_model("input_signature")
        return {f.key: f"{f.dtype} {f.shape_text()}" for f in model.signature}

    # -- setup ----------------------------------------------------------------------

    def setup(self, train_input_fn: InputFn, validation_input_fn: Optional[InputFn] = None,
              train_saver_args: Optional[Mapping[str, Any]] = None) -> "Elistimator":
        """Prepare training (and validation) data; build the graph on the first call.

        Input functions take no argument and return a ``tf.data.Dataset`` of dicts,
        tuples or single tensors. The first call records the input signature and calls
        ``model_fn``; later calls swap the data, which must fit that signature.
        """
        self._require_open()
        max_to_keep, saver_args = _checked_saver_args(train_saver_args, self._max_to_keep, self._saver_args)
        train = BatchStream(train_input_fn, "training")
        validation, built_now = None, self._model is None
        try:
            validation = BatchStream(validation_input_fn, "validation") if validation_input_fn else None
            if built_now:
                self._build(train, validation, saver_args)
            self._check_streams(train, validation)
            if not built_now and saver_args != self._saver_args:
                self._model.replace_saver(saver_args)
            train.restart()
        except BaseException:
            train.close()
            if validation:
                validation.close()
            if built_now and self._session is not None:  # leave nothing half-built behind
                self._session.close()
                self._model, self._session = None, None
            raise
        self._max_to_keep, self._saver_args = max_to_keep, saver_args
        self._replace_streams(train, validation)
        self._write_metadata()
        if not self._tracking_started:
            self._track(self._start_tracking)
            self._write_metadata()
        return self

    # -- tracking -------------------------------------------------------------------

    def _start_tracking(self) -> None:
        """Open the MLflow run (or resume the one the model directory names) at the first setup."""
        self._tracking_started = True
        resuming = self._tracking_resume is not None
        tags = {} if resuming else provenance_tags(self._model_fn)
        self._tracker.start(self._model_dir / SPOOL_DIR, self._experiment, self._run_name,
                            {**tags, **self._run_tags}, resume=self._tracking_resume)
        if resuming:
            self._tracker.set_tags(self._run_tags)
        else:
            saver = {"max_to_keep": self._max_to_keep, **self._saver_args}
            self._tracker.log_params({**flatten_params(self._params), **flatten_params(saver, prefix="saver.")})

    def _track(self, call, *args) -> None:
        """Run a tracking call; tracking never breaks training, so a failure becomes a warning.

        A failed start turns tracking off (there is no run); any other failure loses only
        that call, and later calls (``finish`` above all) are still tried.
        """
        if not self._tracker.active or self._tracking_failed:
            return
        try:
            call(*args)
        except Exception as error:  # noqa: BLE001
            starting = call == self._start_tracking
            self._tracking_failed = starting
            kind = (starting, type(error))
            if kind not in self._tracking_warned:
                self._tracking_warned.add(kind)
                effect = "tracking is off for this Elistimator" if starting else \
                    "that tracking call is lost (later ones are still tried)"
                warnings.warn(f"{effect}: {type(error).__name__}: {error}. Training goes on; what was journaled "
                              f"is kept in {self._model_dir / SPOOL_DIR}", TrackingWarning, stacklevel=3)

    def _log_metrics(self, prefix: str, metrics: Mapping[str, float]) -> None:
        if self._tracking_started:
            self._track(self._tracker.log_metrics, {mlflow_name(f"{prefix}/{k}"): v for k, v in metrics.items()},
                        self._step)

    def _log_checkpoint(self, step: int, with_files: bool = True) -> None:
        """Send ``checkpoints/step-<N>/`` (files, meta graph, JSON with checksums and metrics) to the run."""
        if not self._tracking_started:
            return
        record = self._index.records[step]
        outbox = self._tracker.outbox(f"step-{step}")
        metadata = self._metadata({step: record}, {step: self._index.metrics(step)} if step in self._index.validations
                                  else {}, step, export=True)
        if with_files:
            self._directory.export_checkpoint(record.prefix, record.files, metadata, outbox)
        else:  # new metrics for a checkpoint already sent: only its JSON changes
            ModelDirectory(outbox).write_metadata(metadata)
        self._tracker.log_artifacts(outbox, f"checkpoints/step-{step}")
        self._tracker.set_tags(self._selection_tags())

    def _selection_tags(self) -> Dict[str, str]:
        tags = {"elistimator.latest_step": str(latest_step(self._index))}
        try:
            tags["elistimator.best_step"] = str(best_step(self._index, "loss", "min"))
            tags["elistimator.best_metric"] = "validation/loss (min)"
        except LookupError:
            pass
        return tags

    def _log_events(self) -> None:
        """Send the TensorBoard event directories to the run under ``tensorboard/``."""
        logdirs = [d for d in (self._model_dir / "train", self._model_dir / "validation") if d.is_dir()]
        if not logdirs or not self._tracking_started:
            return
        outbox = self._tracker.outbox("tensorboard")
        for logdir in logdirs:
            link_tree(logdir, outbox / logdir.name)
        self._tracker.log_artifacts(outbox, "tensorboard")

    def _build(self, train: BatchStream, validation: Optional[BatchStream], saver_args: Dict[str, Any]) -> None:
        signature = train.signature
        if validation is not None:
            signature = signature.relaxed_with(validation.signature, "validation")
        model = ModelGraph.build(self._model_fn, self._params, signature, saver_args)
        session = new_session(model.graph, **self._session_args)
        session.run(model.init)
        self._model, self._session = model, session
        self._step = 0

    def _check_streams(self, train: BatchStream, validation: Optional[BatchStream]) -> None:
        model = self._model
        self._require_fits(train, model.train_needs())
        if validation is not None:
            if model.evaluation is None:
                raise ValueError("setup got a validation_input_fn, but model_fn returned no EvaluationSpec "
                                 "to validate with")
            self._require_fits(validation, model.evaluation_needs())

    def _require_fits(self, stream: BatchStream, needed) -> None:
        signature = self._model.signature
        signature.require_fits(stream.signature, stream.role)
        missing = [key for key in needed if key not in stream.signature]
        if missing:
            raise ValueError(f"the {stream.role} dataset lacks feature(s) {', '.join(map(repr, missing))} that "
                             f"the model needs for {stream.role}; the signature is {signature.describe()}")

    def _replace_streams(self, train: BatchStream, validation: Optional[BatchStream]) -> None:
        for old in (self._train_stream, self._validation_stream):
            if old is not None:
                old.close()
        self._train_stream, self._validation_stream = train, validation
        self._epoch_position = 0
        self._lengths.pop("training", None)
        self._lengths.pop("validation", None)

    # -- training -------------------------------------------------------------------

    def train(self, steps: Optional[int] = None) -> "Elistimator":
        """Train for ``steps`` steps, or to the end of the current epoch; return ``self``.

        Each call continues where the previous one stopped; when the data runs out
        during a ``steps`` call, a new epoch starts and training goes on.
        """
        self._require_open()
        if self._train_stream is None:
            raise RuntimeError("train() needs setup(train_input_fn, ...) first")
        steps = _checked_steps(steps)
        if self._restored_step is not None:
            self._drop_abandoned_history()
        self._train_calls += 1
        done = 0
        with progress_bar(f"Training ({self._train_calls})", self._train_total(steps), self.verbose) as bar:
            while steps is None or done < steps:
                batch = self._train_stream.next_batch()
                if batch is None:
                    self._start_new_epoch()
                    if steps is None and done:
                        break
                    continue
                self._epoch_position += 1  # consumed, even if the step below raises
                if not self._batch_size_logged:
                    self._log_batch_size(batch)
                loss = self._train_step(batch, done)
                done += 1
                bar.set_postfix(loss=f"{loss:.6f}", refresh=False)
                bar.update()
        self._train_event_log().flush()
        return self

    def _drop_abandoned_history(self) -> None:
        """Training on from a restored step starts a new branch: later entries no longer apply."""
        step, self._restored_step = self._restored_step, None
        dropped = self._index.drop_after(step)
        self._write_metadata()
        self._sync_checkpoint_files()
        if dropped:
            warnings.warn(f"training continues from the restored step {step}: the later checkpoints {dropped} "
                          "and validations of the abandoned run are dropped", stacklevel=3)

    def _train_total(self, steps: Optional[int]) -> Optional[int]:
        if steps is not None:
            return steps
        length = self._lengths.get("training")
        if length is None:
            return None
        return (length - self._epoch_position) or length

    def _start_new_epoch(self) -> None:
        if self._epoch_position == 0:
            raise ValueError("the training input function yielded no batches")
        self._lengths["training"] = self._epoch_position
        self._epoch_position = 0
        self._train_stream.restart()

    def _train_step(self, batch: Batch, done: int) -> float:
        model = self._model
        write_summaries = (self._step + 1) % self.summary_every_n_steps == 0
        fetches = [model.train_step, model.train.loss]
        if write_summaries and model.user_summaries is not None:
            fetches.append(model.user_summaries)
        values = self._session.run(fetches, feed_dict=model.feed(batch, training=True))
        self._step, loss = int(values[0]), float(values[1])
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss} at global step {self._step} "
                                     f"(step {done + 1} of this train() call)")
        if write_summaries:
            events = self._train_event_log()
            events.scalars({"loss": loss}, self._step)
            if len(values) > 2:
                events.serialized_summary(values[2], self._step)
            self._log_metrics("train", {"loss": loss})
        return loss

    def _log_batch_size(self, batch: Batch) -> None:
        """The first batch's size is the run's ``batch_size`` param (a resumed run has it already)."""
        self._batch_size_logged = True
        if self._tracking_started and self._tracking_resume is None:
            self._track(self._tracker.log_params, {"batch_size": str(batch_size(batch))})

    # -- validation and evaluation ----------------------------------------------------

    def validate(self) -> Dict[str, float]:
        """Run the validation data once: ``{metric: value, ..., 'loss': mean loss per example}``."""
        self._require_open()
        if self._validation_stream is None:
            raise RuntimeError("validate() needs a validation_input_fn: pass one to setup(...)")
        metrics = self._evaluate_stream(self._validation_stream, "Validation")
        self._step = self.global_step
        self._index.record_validation(self._step, metrics)
        self._write_metadata()
        crash_point("validate.index_written")
        self._validation_event_log().scalars(metrics, self._step)
        self._validation_event_log().flush()
        self._log_metrics("validation", metrics)
        if self._step in self._index.records:
            self._track(self._log_checkpoint, self._step, False)
        if self.verbose:
            print(metrics_line(metrics), flush=True)
        return metrics

    def evaluate(self, input_fn: InputFn) -> Dict[str, float]:
        """Evaluate on the data of ``input_fn``; metrics start fresh on every call."""
        model = self._require_model("evaluate()")
        if model.evaluation is None:
            raise RuntimeError("evaluate() needs an EvaluationSpec, but model_fn returned None for it")
        stream = BatchStream(input_fn, "evaluation")
        try:
            self._require_fits(stream, model.evaluation_needs())
            metrics = self._evaluate_stream(stream, "Evaluation")
        finally:
            stream.close()
        self._step = self.global_step
        self._log_metrics("evaluation", metrics)
        return metrics

    def _evaluate_stream(self, stream: BatchStream, description: str) -> Dict[str, float]:
        model = self._model
        spec = model.evaluation
        self._session.run(model.reset_metrics)
        updates = [update for _, update in spec.metric_ops.values()]
        loss_sum, examples = 0.0, 0
        batches = 0
        with progress_bar(description, self._lengths.get(stream.role), self.verbose) as bar:
            for batch in stream.epoch():
                loss, _ = self._session.run([spec.loss, updates], feed_dict=model.feed(batch))
                size = batch_size(batch)
                loss_sum += float(loss) * size
                examples += size
                batches += 1
                bar.update()
        if stream is self._validation_stream:
            self._lengths[stream.role] = batches
        if examples == 0:
            raise ValueError(f"the {stream.role} input function yielded no batches")
        values = self._session.run({name: value for name, (value, _) in spec.metric_ops.items()})
        metrics = {name: float(np.asarray(value).reshape(())) for name, value in values.items()}
        metrics["loss"] = loss_sum / examples
        return metrics

    # -- prediction -----------------------------------------------------------------

    def predict(self, *inputs: Any, input_fn: Optional[InputFn] = None,
                **features: Any) -> Union[Dict[str, np.ndarray], Iterator[Dict[str, np.ndarray]]]:
        """Predict with the PredictSpec's outputs.

        ``predict(input_fn=fn)`` yields one ``{output: array}`` dict per batch.
        ``predict(images=x)`` or ``predict(x)`` runs one batch of arrays through the
        input signature and returns one dict; positional arrays fill, in order, the
        features the outputs need.
        """
        model = self._require_model("predict()")
        if model.predict is None:
            raise RuntimeError("predict() needs a PredictSpec, but model_fn returned None for it")
        if input_fn is not None:
            if inputs or features:
                raise ValueError("predict takes either input_fn=... or one-off inputs such as "
                                 "predict(images=x), not both")
            stream = BatchStream(input_fn, "prediction")
            try:
                self._require_fits(stream, model.predict_needs())
            except BaseException:
                stream.close()
                raise
            return self._predict_batches(stream)
        if not inputs and not features:
            raise ValueError("predict needs input_fn=... or one-off inputs such as predict(images=x); "
                             f"the signature is {model.signature.describe()}")
        if any(callable(value) for value in inputs):
            raise TypeError("pass an input function as predict(input_fn=fn), not positionally")
        batch = one_off_batch(model.signature, model.predict_needs(), inputs, features)
        return self._run_predict(batch)

    def _predict_batches(self, stream: BatchStream) -> Iterator[Dict[str, np.ndarray]]:
        try:
            with progress_bar("Prediction", None, self.verbose) as bar:
                for batch in stream.epoch():
                    yield self._run_predict(batch)
                    bar.update()
        finally:
            stream.close()

    def _run_predict(self, batch: Batch) -> Dict[str, np.ndarray]:
        model = self._model
        return self._session.run(model.predict.output, feed_dict=model.feed(batch))

    # -- checkpoints ----------------------------------------------------------------

    @property
    def checkpoints(self) -> Dict[int, Dict[str, Any]]:
        """``{global_step: {'file': path_prefix, 'metrics': {...}, 'local': bool}}``.

        ``local`` is False once ``max_to_keep`` pruned the files; the entry and its
        metrics stay.
        """
        return {step: {"file": str(self._model_dir / record.prefix), "metrics": self._index.metrics(step),
                       "local": record.local}
                for step, record in sorted(self._index.records.items())}

    def save_ckpt(self) -> str:
        """Save a checkpoint at the current global step; return its path prefix.

        Validation metrics of the same global step attach to it, whichever comes first.
        Beyond ``max_to_keep`` (``train_saver_args``, default 5) the oldest checkpoints'
        files are removed; their entries stay in ``checkpoints`` with ``local=False``.
        """
        model = self._require_model("save_ckpt()")
        directory = self._directory
        step = self._step = self.global_step
        prefix = directory.checkpoint_prefix(step)
        directory.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        if self._index.records.pop(step, None) is not None:
            self._write_metadata()  # its files are about to be overwritten: uncommit them first
        model.saver.save(self._session, str(directory.resolve(prefix)), write_state=False)
        self._index.add(CheckpointRecord(step, prefix, directory.checksums(prefix)))
        crash_point("save_ckpt.files_written")
        self._prune()
        self._write_metadata()  # the commit point: from here on the checkpoint exists
        crash_point("save_ckpt.committed")
        self._track(self._log_checkpoint, step)  # hard links: staged before pruning deletes files
        crash_point("save_ckpt.journaled")
        self._sync_checkpoint_files()
        return str(directory.resolve(prefix))

    def _sync_checkpoint_files(self) -> None:
        """Make the checkpoint directory match the committed index: delete files no local
        entry owns, and list the local ones in TensorFlow's ``checkpoint`` file."""
        local = [self._index.records[s].prefix for s in self._index.steps(local_only=True)]
        self._directory.remove_unreferenced(keep=local)
        self._directory.write_checkpoint_state(local)

    def _prune(self) -> None:
        """Mark all but the newest ``max_to_keep`` checkpoints as no longer on local disk."""
        local = self._index.steps(local_only=True)
        if self._max_to_keep is not None:
            for step in local[:-self._max_to_keep]:
                self._index.records[step].local = False

    def restore_ckpt(self, path_prefix: PathLike) -> "Elistimator":
        """Restore the checkpoint at ``path_prefix`` (absolute, or relative to the model directory)."""
        model = self._require_model("restore_ckpt()")
        prefix = Path(path_prefix)
        if not prefix.is_absolute() and Path(self._model_dir / f"{prefix}.index").is_file():
            prefix = self._model_dir / prefix
        prefix = prefix.absolute()
        indexed = self._record_at(prefix)
        if indexed is not None and not indexed.local:  # removed locally by max_to_keep: the run still has it
            return self._restore_step(indexed.step)
        if not Path(f"{prefix}.index").is_file():
            known = [entry["file"] for entry in self.checkpoints.values() if entry["local"]]
            raise FileNotFoundError(f"no checkpoint at {str(prefix)!r} (no {prefix.name}.index); "
                                    f"checkpoints on local disk: {known or 'none'}")
        if indexed is not None:
            self._verify(indexed)
        try:
            model.saver.restore(self._session, str(prefix))
        except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as error:
            raise ValueError(f"checkpoint {str(prefix)!r} does not fit this model: "
                             f"{error.message.splitlines()[0]}") from None
        self._step = self._restored_step = int(self._session.run(model.global_step))
        return self

    def _record_at(self, prefix: Path) -> Optional[CheckpointRecord]:
        """The indexed checkpoint whose files in the model directory have this path prefix."""
        for record in self._index.records.values():
            if self._directory.resolve(record.prefix) == prefix.resolve():
                return record
        return None

    def _verify(self, record: CheckpointRecord) -> None:
        problems = self._directory.verify(record.prefix, record.files)
        if problems:
            raise ModelDirectoryError(f"the checkpoint at step {record.step} ({record.prefix}) is "
                                      "damaged: " + "; ".join(problems))

    def restore_latest_ckpt(self) -> "Elistimator":
        """Restore the checkpoint with the greatest global step."""
        self._require_model("restore_latest_ckpt()")
        return self._restore_step(latest_step(self._index))

    def restore_best_ckpt(self, metric: str = "loss", mode: str = "min") -> "Elistimator":
        """Restore the checkpoint whose validation ``metric`` is lowest (``mode='min'``) or highest.

        Checkpoints without that metric never win; ties go to the later step.
        """
        self._require_model("restore_best_ckpt()")
        return self._restore_step(best_step(self._index, metric, mode))

    def _restore_step(self, step: int) -> "Elistimator":
        record = self._index.records[step]
        return self.restore_ckpt(self._checkpoint_holder(record) / record.prefix)

    def _checkpoint_holder(self, record: CheckpointRecord) -> Path:
        """The model directory when the checkpoint is on local disk, else a verified download of it
        from the run that logged it (checked against the checksums this directory recorded)."""
        if record.local:
            return self._model_dir
        run = self._run_record()
        if not run.get("run_id"):
            raise FileNotFoundError(f"the checkpoint at step {record.step} is no longer on local disk (pruned by "
                                    f"max_to_keep={self._max_to_keep}) and no MLflow run holds it (this model was "
                                    "not tracked); keep more with train_saver_args={'max_to_keep': N}")
        fetched = tracking_store.fetch_run_checkpoint(run["tracking_uri"], run["run_id"], record.step, self._cache_dir)
        downloaded = CheckpointIndex.from_json(ModelDirectory(fetched).read_metadata()).records.get(record.step)
        if downloaded is None or (record.files and downloaded.files != record.files):
            raise ModelDirectoryError(f"the checkpoint at step {record.step} in run {run['run_id']} is not the one "
                                      f"this model directory recorded (its files or checksums differ)")
        return fetched

    def register_best(self, name: str, metric: str = "loss", mode: str = "min",
                      alias: Optional[str] = "champion") -> str:
        """Register the best checkpoint (by validation ``metric`` and ``mode``) in the MLflow Model
        Registry as a new version of ``name``, tagged with its step and metrics, and point
        ``alias`` at it. The version is an MLflow Model too (``mlflow.pyfunc.load_model``,
        ``mlflow models serve``). Returns the version number.
        """
        self._require_model("register_best()")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        if alias is not None and (not isinstance(alias, str) or not alias.strip()):
            raise ValueError(f"alias must be a non-empty string or None, got {alias!r}")
        step = best_step(self._index, metric, mode)
        record = self._index.records[step]
        holder = ModelDirectory(self._checkpoint_holder(record))
        metrics = self._index.metrics(step)
        with tempfile.TemporaryDirectory(prefix="elistimator-register-") as work:
            export = Path(work) / "model_dir"
            holder.export_checkpoint(record.prefix, record.files, self._metadata({step: record},
                                              {step: metrics}, step, export=True), export)
            return self._tracker.register(step, export, name, alias, version_tags(step, metrics, metric, mode),
                                          run_id=self.run_id)

    def _write_metadata(self) -> None:
        self._directory.write_metadata(self._metadata(self._index.records, self._index.validations, self._step))

    def _metadata(self, records: Mapping[int, CheckpointRecord], validations: Mapping[int, Mapping[str, float]],
                  step: int, export: bool = False) -> Dict[str, Any]:
        """The metadata of this model directory, or (``export``) of a one-checkpoint copy sent
        elsewhere: a copy names the run it came from but does not resume it."""
        run = self._run_record() or None
        metadata = {"graph": self._model.to_names(), "global_step": step, "max_to_keep": self._max_to_keep,
                    "saver_args": self._saver_args, **CheckpointIndex(records.values(), validations).to_json(),
                    "tracking": None if export else run}
        if export and run:
            metadata["source"] = {"tracking_uri": run["tracking_uri"], "run_id": run["run_id"], "step": step}
        return metadata

    @classmethod
    def from_disk(cls, model_dir: PathLike, checkpoint: Union[str, int] = "latest",
                  session_args: Optional[Mapping[str, Any]] = None, *, metric: str = "loss", mode: str = "min",
                  verbose: bool = True, summary_every_n_steps: int = 10, tracking: Union[bool, str, Tracker] = True,
                  experiment: Optional[str] = None, run_name: Optional[str] = None,
                  tags: Optional[Mapping[str, str]] = None, cache_dir: Optional[PathLike] = None) -> "Elistimator":
        """Load a model without the model function.

        ``model_dir`` is a local model directory, ``runs:/<run_id>`` (any checkpoint the
        run logged), ``models:/<name>/<version>`` or ``models:/<name>@<alias>``; remote
        checkpoints are downloaded to ``cache_dir`` (default ``$ELISTIMATOR_CACHE_DIR`` or
        ``~/.cache/elistimator_tracking/downloads``), verified, and reused next time.
        ``checkpoint`` is ``'latest'``, ``'best'`` (by ``metric`` and ``mode``) or a
        global step. ``predict`` and ``evaluate`` work at once; ``setup(...)`` continues
        training from the restored global step, keeping the checkpoint history, and
        resumes the MLflow run a local directory names (with ``tracking=True``, in the
        store it was tracked to).
        """
        _checked_tracking_args(experiment, run_name, tags)
        temporary = None
        if tracking_store.is_remote_source(model_dir):
            store = tracking if isinstance(tracking, str) else None
            cached, checkpoint = tracking_store.resolve_source(model_dir, checkpoint, metric, mode, cache_dir, store)
            temporary = tempfile.TemporaryDirectory(prefix="elistimator-")  # train on a copy, never the cache
            link_tree(cached, Path(temporary.name))
            model_dir = temporary.name
        if not isinstance(model_dir, (str, os.PathLike)):
            raise TypeError(f"model_dir must be a str or pathlib.Path, got {type(model_dir).__name__}")
        directory = ModelDirectory(Path(model_dir).expanduser().absolute())
        if not directory.path.is_dir():
            raise FileNotFoundError(f"model directory {str(directory.path)!r} does not exist")
        metadata = directory.read_metadata()
        index = CheckpointIndex.from_json(metadata)
        if not index.steps():
            raise ModelDirectoryError(f"{str(directory.path)!r} has no checkpoint: call save_ckpt() before loading it")
        step = _select_checkpoint(index, checkpoint, metric, mode)
        estimator = cls.__new__(cls)
        estimator._model_fn, estimator._params, estimator._temporary_dir = None, {}, temporary
        estimator._session_args = _checked_session_args(session_args)
        estimator._init_state(directory.path, verbose, summary_every_n_steps)
        estimator._cache_dir = cache_dir
        recorded = metadata.get("tracking")
        estimator._configure_tracking(tracking, experiment or (recorded or {}).get("experiment") or directory.path.name,
                                      run_name, dict(tags or {}), recorded)
        estimator._index = index
        estimator._max_to_keep = metadata.get("max_to_keep", DEFAULT_MAX_TO_KEEP)
        estimator._saver_args = dict(metadata.get("saver_args", {}))
        record = index.records[step]
        holder = estimator._checkpoint_holder(record)
        estimator._load_graph(metadata["graph"], record, holder)
        try:
            estimator.restore_ckpt(holder / record.prefix)  # the holder is fetched once, not again
        except BaseException:
            estimator.close()
            raise
        estimator._restored_step = None  # loading is not a branch point: its history is the newest
        return estimator

    def _load_graph(self, names: Mapping[str, Any], record: CheckpointRecord, holder: Path) -> None:
        """Import the checkpoint's meta graph from ``holder`` (the model directory, or a download)."""
        meta = ModelDirectory(holder).resolve(record.prefix + ".meta")
        if not meta.is_file():
            raise ModelDirectoryError(f"the checkpoint at step {record.step} has no meta graph ({meta.name})")
        graph = tf.Graph()
        with graph.as_default():
            saver = tf.train.import_meta_graph(str(meta), clear_devices=True)
        try:
            model = ModelGraph.from_names(graph, names, saver)
        except (KeyError, ValueError, TypeError, AttributeError) as error:
            raise ModelDirectoryError(f"{self._directory.metadata_path} does not match the saved graph: "
                                      f"{error}") from None
        session = new_session(graph, **self._session_args)
        session.run(model.init)
        self._model, self._session = model, session

    # -- lifecycle ------------------------------------------------------------------

    def close(self) -> None:
        """End the MLflow run as FINISHED; close event files, sessions and data streams.

        The model directory stays. Delivery of what tracking still holds is awaited while
        the store answers (bounded); the rest stays spooled in the model directory.
        """
        self._close("FINISHED")

    def _close(self, status: str, error: Optional[str] = None) -> None:
        if self._closed:
            return
        self._closed = True
        for events in (self._train_events, self._validation_events):
            if events is not None:
                events.close()
        self._track(self._log_events)
        if self._tracking_started:
            self._track(self._tracker.finish, status, error)
            if self._model is not None:
                self._write_metadata()  # the run id, if the store answered only after setup()
        for resource in (self._train_stream, self._validation_stream, self._session):
            if resource is not None:
                resource.close()

    def __enter__(self) -> "Elistimator":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Leaving the block ends the run: FINISHED, KILLED on Ctrl-C, FAILED (with the error) otherwise."""
        if exc_type is None or (issubclass(exc_type, SystemExit) and exc.code in (0, None)):
            self._close("FINISHED")
        elif issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            self._close("KILLED", exc_type.__name__)
        else:
            self._close("FAILED", "".join(traceback.format_exception_only(exc_type, exc)).strip())

    # -- helpers --------------------------------------------------------------------

    def _prepare_model_dir(self, model_dir: Optional[PathLike]) -> Path:
        if model_dir is None:
            self._temporary_dir = tempfile.TemporaryDirectory(prefix="elistimator-")
            return Path(self._temporary_dir.name)
        if not isinstance(model_dir, (str, os.PathLike)):
            raise TypeError(f"model_dir must be a str or pathlib.Path, got {type(model_dir).__name__}")
        path = Path(model_dir).expanduser().absolute()
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"model_dir {str(path)!r} exists and is not a directory")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _require_open(self) -> None:
        if self._closed:
            raise RuntimeError("this Elistimator is closed")

    def _require_model(self, what: str) -> ModelGraph:
        self._require_open()
        if self._model is None:
            raise RuntimeError(f"{what} needs a model: call setup(train_input_fn, ...) first")
        return self._model

    def _train_event_log(self) -> EventLog:
        if self._train_events is None:
            self._train_events = EventLog(self._model_dir / "train", graph=self._model.graph)
        return self._train_events

    def _validation_event_log(self) -> EventLog:
        if self._validation_events is None:
            self._validation_events = EventLog(self._model_dir / "validation")
        return self._validation_events


def _checked_tracking_args(experiment: Optional[str], run_name: Optional[str],
                           tags: Optional[Mapping[str, str]]) -> Tuple[Optional[str], Optional[str], Dict[str, str]]:
    for name, value in (("experiment", experiment), ("run_name", run_name)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f"{name} must be a non-empty string or None, got {value!r}")
    if tags is not None and (not isinstance(tags, Mapping)
                             or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())):
        raise TypeError(f"tags must be a dict of str to str, got {tags!r}")
    return experiment, run_name, dict(tags or {})


def _checked_session_args(session_args: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    if session_args is None:
        return {}
    if not isinstance(session_args, Mapping):
        raise TypeError(f"session_args must be a dict of tf.Session arguments, got {type(session_args).__name__}")
    unknown = sorted(set(session_args) - set(SESSION_ARGS))
    if unknown:
        raise TypeError(f"session_args has unknown key(s) {unknown}; tf.Session takes {list(SESSION_ARGS)}")
    return dict(session_args)


def _checked_saver_args(args: Optional[Mapping[str, Any]], max_to_keep: Optional[int],
                        saver_args: Dict[str, Any]) -> Tuple[Optional[int], Dict[str, Any]]:
    """Split ``train_saver_args`` into our ``max_to_keep`` and the rest for tf.train.Saver."""
    if args is None:
        return max_to_keep, saver_args
    if not isinstance(args, Mapping):
        raise TypeError(f"train_saver_args must be a dict of tf.train.Saver arguments, got {type(args).__name__}")
    args = dict(args)
    max_to_keep = args.pop("max_to_keep", max_to_keep)
    if max_to_keep is not None and (isinstance(max_to_keep, bool) or not isinstance(max_to_keep, int)
                                    or max_to_keep < 1):
        raise ValueError(f"train_saver_args['max_to_keep'] must be a positive int or None (keep all), "
                         f"got {max_to_keep!r}")
    unsupported = sorted(set(args) & {"keep_checkpoint_every_n_hours", "saver_def", "builder", "defer_build"})
    unknown = sorted(set(args) - set(inspect.signature(tf.train.Saver.__init__).parameters) - {"self"})
    if unsupported or unknown:
        raise ValueError(f"train_saver_args has unsupported key(s) {unsupported + unknown}; the Elistimator "
                         "prunes checkpoints by max_to_keep and passes the other tf.train.Saver arguments on")
    return max_to_keep, args


def _select_checkpoint(index: CheckpointIndex, checkpoint: Union[str, int], metric: str, mode: str) -> int:
    if checkpoint == "latest":
        return latest_step(index)
    if checkpoint == "best":
        return best_step(index, metric, mode)
    if isinstance(checkpoint, (int, np.integer)) and not isinstance(checkpoint, bool):
        if int(checkpoint) not in index.records:
            raise LookupError(f"there is no checkpoint at step {checkpoint}; checkpoints: {index.steps()}")
        return int(checkpoint)
    raise ValueError(f"checkpoint must be 'latest', 'best' or a global step, got {checkpoint!r}")


def _checked_steps(steps: Any) -> Optional[int]:
    if steps is None:
        return None
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise TypeError(f"steps must be a positive int or None, got {type(steps).__name__}")
    if steps < 1:
        raise ValueError(f"steps must be a positive int or None, got {steps}")
    return int(steps)
