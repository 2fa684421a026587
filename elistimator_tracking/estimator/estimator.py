"""``Estimator``: tf.estimator 1.15's training object, as a front end over the Elistimator.

The Elistimator underneath (``live.py``) owns the graph (built once from ``model_fn``, see
``model.py``), the session, checkpoints, ``elistimator.json`` and the MLflow run. This class maps
tf.estimator's calls onto it: each ``train``/``evaluate``/``predict`` reads a fresh ``input_fn``
(as tf.estimator did), starts from the directory's latest checkpoint, and runs the hooks; nothing
is rebuilt between calls unless another writer committed to the directory meanwhile.
"""

from __future__ import annotations

import copy
import logging
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import _exit
from .._tf import tf
from ..elistimator import Elistimator
from ..errors import EstimatorTypeError, InvalidTypeError, InvalidValueError, NotSupportedError
from ..events import EventLog
from ..settings import Settings
from ..tracking.names import SAVED_MODEL_ARTIFACTS
from . import directory as layout_files
from .arguments import checked_listeners, count, examples, strategy_of
from .config import RunConfig
from .export import write_saved_model
from .hooks import HookRunner, TrainingRunner, checked_hooks
from .inputs import flat_input_fn
from .live import LiveModel
from .model import EstimatorModel, check_model_fn
from .spec import ModeKeys
from .warm_start import checkpoint_of, settings_of

log = logging.getLogger("elistimator_tracking.estimator")


class Estimator:
    """tf.estimator's ``Estimator(model_fn, model_dir, config, params, warm_start_from)``, tracked in MLflow.

    ``model_fn`` takes any of ``features, labels, mode, params, config`` by name and returns
    an ``EstimatorSpec``. Beyond tf.estimator (keyword-only): ``tracking`` (True: MLflow at
    ``MLFLOW_TRACKING_URI`` or its default store; a URI; False), ``experiment``, ``run_name``,
    ``tags`` and ``verbose`` (progress bars), as for the Elistimator.
    """

    def __init__(
        self,
        model_fn: Callable,
        model_dir: str | None = None,
        config: RunConfig | None = None,
        params: Mapping[str, Any] | None = None,
        warm_start_from: Any = None,
        *,
        tracking: Any = True,
        experiment: str | None = None,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        verbose: bool = False,
    ):
        check_model_fn(model_fn, params)
        config = RunConfig() if config is None else config
        if not isinstance(config, RunConfig):
            raise EstimatorTypeError(
                f"config must be an instance of `RunConfig`, but provided {config!r} ({type(config).__name__})"
            )
        if params is not None and not isinstance(params, Mapping):
            raise InvalidTypeError(f"params must be a dict or None, got {type(params).__name__}")
        if model_dir is not None and config.model_dir is not None and str(model_dir) != config.model_dir:
            raise InvalidValueError(f"model_dir {model_dir!r} and RunConfig.model_dir {config.model_dir!r} differ")
        strategy = strategy_of(config)
        self._params = copy.deepcopy(dict(params or {}))
        self._model = EstimatorModel(model_fn, config, lambda: self._live.trained_layout())
        self._warm_start = settings_of(warm_start_from)
        settings = Settings.checked(
            session_args=config.session_args(),
            verbose=verbose,
            summary_every_n_steps=config.save_summary_steps,
            tracking=tracking,
            experiment=experiment,
            run_name=run_name,
            tags=tags,
            distribute=strategy,
        )
        directory = model_dir if model_dir is not None else config.model_dir
        self._live = LiveModel(self._model, directory, self._params, settings, self._warm_start)
        self._live.keep = config.keep_checkpoint_max
        self._config = config.replace(model_dir=str(self._live.path))
        self._model.config = self._config
        self._top = layout_files.TopEvents(self._live.path)
        reference = weakref.ref(self)
        self._exit_key = _exit_closer(reference)

    # -- tf.estimator's properties ----------------------------------------------------------------

    @property
    def model_dir(self) -> str:
        return str(self._live.path)

    @property
    def config(self) -> RunConfig:
        return copy.deepcopy(self._config)

    @property
    def params(self) -> dict[str, Any]:
        return copy.deepcopy(self._params)

    @property
    def model_fn(self) -> Callable:
        return self._model.model_fn

    @property
    def elistimator(self) -> Elistimator:
        """The Elistimator underneath (its run, checkpoints, ``register_best``, ``session``)."""
        return self._live.elistimator

    def eval_dir(self, name: str | None = None) -> str:
        return str(Path(self.model_dir) / ("eval" if not name else f"eval_{name}"))

    # -- train ---------------------------------------------------------------------------------------

    def train(
        self,
        input_fn: Callable,
        hooks: Sequence[Any] | None = None,
        steps: int | None = None,
        max_steps: int | None = None,
        saving_listeners: list[Any] | None = None,
    ) -> Estimator:
        """Train on ``input_fn``'s data for ``steps`` more steps, up to global step ``max_steps``, or until the
        data runs out or a hook stops it; checkpoints as ``RunConfig`` says, when training starts and at the end."""
        if steps is not None and max_steps is not None:
            raise InvalidValueError("Can not provide both steps and max_steps.")
        steps, max_steps = count("steps", steps), count("max_steps", max_steps)
        hooks = checked_hooks(hooks, "hooks")
        listeners = checked_listeners(saving_listeners, self._config)
        with self._live.call() as el:
            if max_steps is not None and self._live.latest_step() >= max_steps:
                log.info("Skipping training since max_steps has already saved.")
                return self
            self._training_data(input_fn)
            el = self._live.elistimator
            start = el.global_step
            with self._live.graph().as_default():  # hooks call tf.train.get_global_step() in before_run
                runner = TrainingRunner(
                    hooks + self._model.hooks(ModeKeys.TRAIN),
                    el.session,
                    el.training_loss,
                    start,
                    start + steps if steps is not None else max_steps,
                    self._config,
                    lambda step: self._save(step, listeners),
                    self._top,
                )
                for listener in listeners:
                    listener.begin()
                runner.begin()
                el.train(None, watch=runner)
                runner.save()
                runner.end()
                for listener in listeners:
                    listener.end(el.session, el.global_step)
        return self

    def _training_data(self, input_fn: Callable) -> None:
        """Train on ``input_fn``'s data from its first batch. tf.estimator called ``input_fn`` on every
        ``train()``; the same function object as last time is not called again (its dataset, already
        loaded, restarts), which saves reading and loading the whole data set per call."""
        live = self._live
        if live.built and live.provisional:  # built to predict, without labels: build it to train
            live.reopen()
        if live.built and input_fn is live.train_input_fn:
            live.elistimator.restart_training()
            return
        live.setup(
            flat_input_fn(
                input_fn, ModeKeys.TRAIN, self._params, self._config, found=live.learn_layout, dtypes=live.dtypes
            )
        )
        live.train_input_fn = input_fn

    def _save(self, step: int, listeners: list[Any]) -> bool:
        """A checkpoint at ``step`` (the latest one, restored, is not written again); True when a saving
        listener asks to stop."""
        el = self._live.elistimator
        for listener in listeners:
            listener.before_save(el.session, step)
        if step not in el.checkpoints or not el.checkpoints[step]["local"]:
            el.save_ckpt()
            self._live.write_checkpoint_state()
        return any([bool(listener.after_save(el.session, step)) for listener in listeners])

    # -- evaluate ------------------------------------------------------------------------------------

    def evaluate(
        self,
        input_fn: Callable,
        steps: int | None = None,
        hooks: Sequence[Any] | None = None,
        checkpoint_path: str | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Evaluate the latest checkpoint (or ``checkpoint_path``; the initial weights when there is none) on
        ``input_fn``'s data (its first ``steps`` batches): the metrics, ``loss`` and ``global_step``. Without
        ``name`` the metrics are the checkpoint's validation metrics (``register_best`` selects by them); with
        one, MLflow gets them as ``evaluation/<name>/<metric>``. TensorBoard: ``eval`` or ``eval_<name>``."""
        return self._evaluate(input_fn, steps, hooks, checkpoint_path, name, validation=name is None)

    def _evaluate(
        self,
        input_fn: Callable,
        steps: int | None,
        hooks: Sequence[Any] | None,
        checkpoint_path: str | None,
        name: str | None,
        validation: bool,
    ) -> dict[str, Any]:
        """``evaluate``; ``validation``: the metrics are the checkpoint's validation (``train_and_evaluate``)."""
        hooks = checked_hooks(hooks, "hooks")
        steps = count("steps", steps)
        with self._live.call():
            fn = self._live.reading_fn(input_fn, ModeKeys.EVAL)
            self._model.require(ModeKeys.EVAL)
            el = self._live.elistimator
            own = self._live.restore_for_call(checkpoint_path)
            try:
                with self._live.graph().as_default():
                    runner = HookRunner(hooks + self._model.hooks(ModeKeys.EVAL), el.session, steps).begin()
                    if validation and own:
                        metrics = el.validate(fn, watch=runner)
                    else:  # another model's checkpoint: its metrics are no validation of this model's steps
                        metrics = el.evaluate(fn, watch=runner, name=name)
                    runner.end()
                step = el.global_step
            finally:
                self._live.restore_after_call(checkpoint_path)
        events = EventLog(Path(self.eval_dir(name)))
        events.scalars(metrics, step)
        events.close()
        return {**metrics, "global_step": step}

    # -- predict -------------------------------------------------------------------------------------

    def predict(
        self,
        input_fn: Callable,
        predict_keys: list[str] | None = None,
        hooks: Sequence[Any] | None = None,
        checkpoint_path: str | None = None,
        yield_single_examples: bool = True,
    ) -> Iterator[Any]:
        """Yield predictions of the latest checkpoint (or ``checkpoint_path``; the initial weights when there is
        none) for ``input_fn``'s features (labels are ignored): one example at a time, or one batch with
        ``yield_single_examples=False``."""
        hooks = checked_hooks(hooks, "hooks")
        with self._live.call():  # the directory is taken to build and restore, not while the caller iterates
            fn = self._live.reading_fn(input_fn, ModeKeys.PREDICT)
            self._model.require(ModeKeys.PREDICT)
            keys = self._predict_keys(predict_keys)
            self._live.restore_for_call(checkpoint_path)
        el = self._live.elistimator
        try:
            with self._live.graph().as_default():
                runner = HookRunner(hooks + self._model.hooks(ModeKeys.PREDICT), el.session).begin()
                for batch in self._live.predictions(fn, runner):
                    batch = {key: batch[key] for key in keys}
                    yield from examples(batch, self._model.single_prediction, yield_single_examples)
                runner.end()
        finally:
            self._live.restore_after_call(checkpoint_path)

    def _predict_keys(self, predict_keys: list[str] | None) -> list[str]:
        outputs = list(self._live.elistimator.prediction_outputs)
        if predict_keys is None:
            return outputs
        if isinstance(predict_keys, str):
            predict_keys = [predict_keys]
        unknown = [key for key in predict_keys if key not in outputs]
        if unknown:
            raise InvalidValueError(f"predict_keys {unknown} are not among the predictions {outputs}")
        return list(predict_keys)

    # -- checkpoints and export ---------------------------------------------------------------------

    def latest_checkpoint(self) -> str | None:
        """The path prefix of the directory's latest checkpoint (this front end's or tf.estimator's), or None."""
        return tf.train.latest_checkpoint(self.model_dir) or self._live.start_checkpoint()

    def get_variable_names(self) -> list[str]:
        return [name for name, _ in tf.train.list_variables(self._require_checkpoint())]

    def get_variable_value(self, name: str) -> np.ndarray:
        return tf.train.load_variable(self._require_checkpoint(), name)

    def export_saved_model(
        self,
        export_dir_base: str,
        serving_input_receiver_fn: Callable,
        assets_extra: Mapping[str, str] | None = None,
        as_text: bool = False,
        checkpoint_path: str | None = None,
        experimental_mode: str = ModeKeys.PREDICT,
    ) -> bytes:
        """Write the latest checkpoint (or ``checkpoint_path``; a warm start's when there is none) as a SavedModel
        for serving under ``export_dir_base/<timestamp>``; the SavedModel is logged to the MLflow run too."""
        if experimental_mode != ModeKeys.PREDICT:
            raise NotSupportedError("export_saved_model exports the PREDICT mode only")
        return self._export(export_dir_base, serving_input_receiver_fn, assets_extra, as_text, checkpoint_path, True)

    def export_savedmodel(
        self,
        export_dir_base: str,
        serving_input_receiver_fn: Callable,
        assets_extra: Mapping[str, str] | None = None,
        as_text: bool = False,
        checkpoint_path: str | None = None,
        strip_default_attrs: bool = False,
    ) -> bytes:
        """tf.estimator 1.x's name and signature of ``export_saved_model``."""
        return self._export(
            export_dir_base, serving_input_receiver_fn, assets_extra, as_text, checkpoint_path, strip_default_attrs
        )

    def _export(self, base, receiver_fn, assets_extra, as_text, checkpoint_path, strip_default_attrs) -> bytes:
        checkpoint = checkpoint_path or self.latest_checkpoint()
        if checkpoint is None and self._warm_start is not None:
            checkpoint = checkpoint_of(self._warm_start)
        if checkpoint is None:
            raise InvalidValueError(f"Couldn't find trained model at {self.model_dir}.")
        path = write_saved_model(
            self._model, self._params, checkpoint, base, receiver_fn, as_text, assets_extra, strip_default_attrs
        )
        with self._live.call() as el:
            if self._live.built:  # the run starts with the graph: an export before training is not tracked
                el.log_artifacts(Path(path.decode()), f"{SAVED_MODEL_ARTIFACTS}/{Path(path.decode()).name}")
        return path

    def close(self) -> None:
        """End the MLflow run (FINISHED) and free the session; called at exit when a program does not.
        Closing again does nothing, as a file's ``close`` does."""
        self.__exit__(None, None, None)

    def __enter__(self) -> Estimator:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._live.elistimator.closed:
            return
        _exit.closed(self._exit_key)
        self._live.prepare_close()
        self._live.elistimator.__exit__(*exc_info)
        self._top.close()

    # -- helpers ---------------------------------------------------------------------------------------

    def _require_checkpoint(self) -> str:
        checkpoint = self.latest_checkpoint()
        if checkpoint is None:
            raise InvalidValueError(f"Could not find trained model in model_dir: {self.model_dir}")
        return checkpoint


def _exit_closer(reference: weakref.ref[Estimator]) -> int:
    """At interpreter exit, before the Elistimator ends its run: let it write its record only if its view of
    the directory is current. Returns the key to ``_exit.closed`` when the Estimator closes first."""

    def before_exit(status: str, error: str | None) -> None:
        estimator = reference()
        if estimator is not None:
            estimator._live.prepare_close()
            estimator._top.close()

    _exit.keep_open(id(before_exit), before_exit)
    return id(before_exit)
