"""``Estimator``: tf.estimator 1.15's training object, as a front end over the Elistimator.

The Elistimator underneath owns the graph (built once from ``model_fn``, see ``model.py``),
the session, checkpoints, ``elistimator.json`` and the MLflow run. This class maps
tf.estimator's calls onto it: each ``train``/``evaluate``/``predict`` reads a fresh
``input_fn`` (as tf.estimator did), starts from the latest checkpoint, and runs the
hooks; nothing is rebuilt between calls. A new ``Estimator`` on a model directory that
holds checkpoints goes on from the latest one and resumes its MLflow run.
"""

from __future__ import annotations

import atexit
import copy
import json
import logging
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._tf import tf
from ..distribute import checked_strategy
from ..elistimator import Elistimator
from ..errors import InvalidTypeError, InvalidValueError, ModelDirectoryError, NotSupportedError, UsageError
from ..events import EventLog
from ..inputs import InputSignature
from ..loading import continued_model, new_model
from ..model_dir import write_json_atomic
from ..settings import Settings
from .config import DISTRIBUTE_FEATURE, RunConfig
from .export import write_saved_model
from .hooks import HookRunner, TrainingRunner, checked_hooks
from .inputs import Layout, flat_input_fn, matching, placeholder_input_fn
from .model import EstimatorModel
from .spec import ModeKeys

log = logging.getLogger("elistimator_tracking.estimator")
LAYOUT_FILE = "estimator.json"  # how (features, labels) were flattened; lets predict() come first


def _count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidValueError(f"{name} must be a positive int or None, got {value!r}")
    return int(value)


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
        warm_start_from: str | None = None,
        *,
        tracking: Any = True,
        experiment: str | None = None,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        verbose: bool = False,
    ):
        if not callable(model_fn):
            raise InvalidTypeError(f"model_fn must be a function, got {type(model_fn).__name__}")
        config = RunConfig() if config is None else config
        if not isinstance(config, RunConfig):
            raise InvalidTypeError(f"config must be an estimator.RunConfig, got {type(config).__name__}")
        if params is not None and not isinstance(params, Mapping):
            raise InvalidTypeError(f"params must be a dict or None, got {type(params).__name__}")
        if warm_start_from is not None and not isinstance(warm_start_from, str):
            raise NotSupportedError(
                "warm_start_from takes a checkpoint path or a model directory; WarmStartSettings are not supported"
            )
        if model_dir is not None and config.model_dir is not None and str(model_dir) != config.model_dir:
            raise InvalidValueError(f"model_dir {model_dir!r} and RunConfig.model_dir {config.model_dir!r} differ")
        strategy = _strategy(config)
        self._params = copy.deepcopy(dict(params or {}))
        self._model = EstimatorModel(model_fn, config, self._trained_layout, warm_start_from)
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
        origin = (continued_model if directory is not None else new_model)(
            self._model, directory, self._params, settings
        )
        self._recorded = origin.metadata.graph if origin.metadata is not None else None
        self._elistimator = Elistimator._from_origin(origin)
        self._config = config.replace(model_dir=str(self._elistimator.model_dir))
        self._model.config = self._config
        self._layout: Layout | None = self._read_layout()
        self._built = False
        self._train_input_fn: Callable | None = None  # the input_fn whose data is set up for training
        atexit.register(_close_at_exit, weakref.ref(self))

    # -- tf.estimator's properties ----------------------------------------------------------------

    @property
    def model_dir(self) -> str:
        return str(self._elistimator.model_dir)

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
        return self._elistimator

    def eval_dir(self, name: str | None = None) -> str:
        return str(Path(self.model_dir) / ("eval" if not name else f"eval_{name}"))

    # -- train / evaluate / predict -----------------------------------------------------------------

    def train(
        self,
        input_fn: Callable,
        hooks: list[Any] | None = None,
        steps: int | None = None,
        max_steps: int | None = None,
        saving_listeners: list[Any] | None = None,
    ) -> Estimator:
        """Train on ``input_fn``'s data for ``steps`` more steps, up to global step ``max_steps``, or until the
        data runs out or a hook stops it; checkpoints as ``RunConfig`` says and at the end."""
        if steps is not None and max_steps is not None:
            raise InvalidValueError("Can not provide both steps and max_steps.")
        steps, max_steps = _count("steps", steps), _count("max_steps", max_steps)
        hooks = checked_hooks(hooks, "hooks")
        listeners = list(saving_listeners or [])
        for listener in listeners:
            if not isinstance(listener, tf.train.CheckpointSaverListener):
                raise InvalidTypeError(
                    f"saving_listeners must hold tf.compat.v1.train.CheckpointSaverListener objects, "
                    f"got {type(listener).__name__}"
                )
        if max_steps is not None and self._latest_step() >= max_steps:
            log.info("Skipping training since max_steps has already saved.")
            return self
        self._training_data(input_fn)
        el = self._elistimator
        start = el.global_step
        runner = TrainingRunner(
            hooks + self._model.hooks(ModeKeys.TRAIN),
            el.session,
            el._require_model("train()").model.train.loss,
            start,
            start + steps if steps is not None else max_steps,
            self._config,
            lambda step: self._save(step, listeners),
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
        if self._built and input_fn is self._train_input_fn:
            self._elistimator._require_model("train()").restart_training()
            return
        self._prepare(flat_input_fn(input_fn, ModeKeys.TRAIN, self._params, self._config, found=self._learn_layout))
        self._train_input_fn = input_fn

    def _save(self, step: int, listeners: list[Any]) -> bool:
        """A checkpoint at ``step``; True when a saving listener asks to stop."""
        session = self._elistimator.session
        for listener in listeners:
            listener.before_save(session, step)
        self._elistimator.save_ckpt()
        return any([bool(listener.after_save(session, step)) for listener in listeners])

    def evaluate(
        self,
        input_fn: Callable,
        steps: int | None = None,
        hooks: list[Any] | None = None,
        checkpoint_path: str | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Evaluate the latest checkpoint (or ``checkpoint_path``) on ``input_fn``'s data (its first ``steps``
        batches): the metrics, ``loss`` and ``global_step``. Without ``name`` the metrics are the
        checkpoint's validation metrics (``register_best`` selects by them); with one, MLflow gets them as
        ``evaluation/<name>/<metric>``. TensorBoard: ``eval`` or ``eval_<name>``."""
        return self._evaluate(input_fn, steps, hooks, checkpoint_path, name, validation=name is None)

    def _evaluate(
        self,
        input_fn: Callable,
        steps: int | None,
        hooks: list[Any] | None,
        checkpoint_path: str | None,
        name: str | None,
        validation: bool,
    ) -> dict[str, Any]:
        """``evaluate``; ``validation``: the metrics are the checkpoint's validation (``train_and_evaluate``)."""
        hooks = checked_hooks(hooks, "hooks")
        steps = _count("steps", steps)
        fn = flat_input_fn(
            input_fn,
            ModeKeys.EVAL,
            self._params,
            self._config,
            found=lambda layout: self._check_layout(layout, "evaluation"),
        )
        self._prepare_trained()
        self._model.require(ModeKeys.EVAL)
        el = self._elistimator
        with self._restored(checkpoint_path):
            runner = HookRunner(hooks + self._model.hooks(ModeKeys.EVAL), el.session, steps).begin()
            metrics = el.validate(fn, watch=runner) if validation else el.evaluate(fn, watch=runner, name=str(name))
            runner.end()
            step = el.global_step
        events = EventLog(Path(self.eval_dir(name)))
        events.scalars(metrics, step)
        events.close()
        return {**metrics, "global_step": step}

    def predict(
        self,
        input_fn: Callable,
        predict_keys: list[str] | None = None,
        hooks: list[Any] | None = None,
        checkpoint_path: str | None = None,
        yield_single_examples: bool = True,
    ) -> Iterator[Any]:
        """Yield predictions of the latest checkpoint (or ``checkpoint_path``) for ``input_fn``'s features (labels
        are ignored): one example at a time, or one batch with ``yield_single_examples=False``."""
        hooks = checked_hooks(hooks, "hooks")
        fn = flat_input_fn(
            input_fn,
            ModeKeys.PREDICT,
            self._params,
            self._config,
            drop_labels=True,
            found=lambda layout: self._check_layout(layout, "prediction"),
        )
        self._prepare_trained()
        self._model.require(ModeKeys.PREDICT)
        keys = self._predict_keys(predict_keys)
        with self._restored(checkpoint_path):
            runner = HookRunner(hooks + self._model.hooks(ModeKeys.PREDICT), self._elistimator.session).begin()
            loops = self._elistimator._require_model("predict()")
            for batch in loops.predict((), {}, fn, self._elistimator.verbose, runner):
                batch = {key: batch[key] for key in keys}
                yield from _examples(batch, self._model.single_prediction, yield_single_examples)
            runner.end()

    def _predict_keys(self, predict_keys: list[str] | None) -> list[str]:
        outputs = list(self._elistimator._require_model("predict()").model.predict.output)
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
        """The path prefix of the latest checkpoint, or None."""
        checkpoints = self._elistimator.checkpoints
        return str(Path(self.model_dir) / checkpoints[max(checkpoints)]["file"]) if checkpoints else None

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
        """Write the latest checkpoint (or ``checkpoint_path``) as a SavedModel for serving under
        ``export_dir_base/<timestamp>``; the SavedModel is logged to the MLflow run too."""
        if experimental_mode != ModeKeys.PREDICT:
            raise NotSupportedError("export_saved_model exports the PREDICT mode only")
        checkpoint = checkpoint_path or self._require_checkpoint()
        if self._layout is None:
            raise InvalidValueError("export_saved_model needs a model trained by this Estimator's model_fn")
        path = write_saved_model(
            self._model, self._params, checkpoint, export_dir_base, serving_input_receiver_fn, as_text, assets_extra
        )
        self._elistimator.log_artifacts(Path(path.decode()), f"saved_models/{Path(path.decode()).name}")
        return path

    export_savedmodel = export_saved_model  # the tf.estimator 1.x name

    def close(self) -> None:
        """End the MLflow run (FINISHED) and free the session; called at exit when a program does not."""
        self._elistimator.close()

    def __enter__(self) -> Estimator:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._elistimator.__exit__(*exc_info)

    # -- building and restoring ---------------------------------------------------------------------

    def _prepare(self, input_fn: Callable) -> None:
        """Set up ``input_fn``'s data; the first time, build the graph and restore the latest checkpoint."""
        self._elistimator.setup(input_fn, train_saver_args={"max_to_keep": self._config.keep_checkpoint_max})
        if not self._built:
            self._built = True
            self._write_layout()
            if self._elistimator.checkpoints:
                self._elistimator.restore_latest_ckpt()

    def _prepare_trained(self) -> None:
        """Build the graph for evaluate/predict first: a model with checkpoints is needed."""
        if self._built:
            return
        if not self._elistimator.checkpoints or self._recorded is None or self._layout is None:
            raise InvalidValueError(f"Could not find trained model in model_dir: {self.model_dir}")
        signature = InputSignature.from_json(self._recorded["signature"])
        self._prepare(placeholder_input_fn({f.key: (f.dtype, f.shape) for f in signature}))

    def _restored(self, checkpoint_path: str | None):
        return _Restored(self._elistimator, checkpoint_path)

    def _require_checkpoint(self) -> str:
        checkpoint = self.latest_checkpoint()
        if checkpoint is None:
            raise InvalidValueError(f"Could not find trained model in model_dir: {self.model_dir}")
        return checkpoint

    def _latest_step(self) -> int:
        return max(self._elistimator.checkpoints, default=0) if not self._built else self._elistimator.global_step

    # -- the layout of (features, labels) -------------------------------------------------------------

    def _trained_layout(self) -> Layout:
        if self._layout is None:
            raise UsageError("the layout of the input data is not known yet")
        return self._layout

    def _learn_layout(self, layout: Layout) -> None:
        if self._layout is None:
            self._layout = layout
        else:
            matching(layout, self._layout, "training")

    def _check_layout(self, layout: Layout, role: str) -> None:
        matching(layout, self._trained_layout(), role)

    def _read_layout(self) -> Layout | None:
        path = Path(self.model_dir) / LAYOUT_FILE
        if not path.is_file():
            return None
        try:
            return Layout.from_json(json.loads(path.read_text(encoding="utf-8"))["layout"])
        except (ValueError, KeyError, TypeError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ModelDirectoryError(
                f"{path} is corrupt or truncated ({type(error).__name__}: {error}); it is not the layout "
                "of (features, labels) this package writes"
            ) from None

    def _write_layout(self) -> None:
        write_json_atomic(Path(self.model_dir) / LAYOUT_FILE, {"layout": self._layout.to_json()})


class _Restored:
    """Within the block the model holds ``checkpoint_path``'s weights; the latest checkpoint's again after
    (tf.estimator's training always starts from the latest checkpoint)."""

    def __init__(self, elistimator: Elistimator, checkpoint_path: str | None):
        self._elistimator, self._path = elistimator, checkpoint_path

    def __enter__(self) -> None:
        if self._path is not None:
            self._elistimator.restore_ckpt(self._path)

    def __exit__(self, *exc_info: Any) -> None:
        if self._path is not None:
            self._elistimator.restore_latest_ckpt()


def _examples(batch: dict[str, np.ndarray], single: bool, one_by_one: bool) -> Iterator[Any]:
    """A batch of predictions as tf.estimator yielded it."""
    if not one_by_one:
        yield batch["output"] if single else batch
        return
    sizes = {key: (value.shape[0] if np.ndim(value) else None) for key, value in batch.items()}
    if None in sizes.values() or len(set(sizes.values())) > 1:
        raise InvalidValueError(
            f"Batch length of predictions should be same; got {sizes} (with yield_single_examples=True "
            "every prediction needs the batch as its first dimension)"
        )
    for row in range(next(iter(sizes.values()))):
        yield batch["output"][row] if single else {key: value[row] for key, value in batch.items()}


def _strategy(config: RunConfig) -> Any:
    """The Elistimator's ``distribute=`` from ``RunConfig``: one graph trains and evaluates, so
    ``eval_distribute`` must be None or ``train_distribute`` itself. Batches are global (split
    across replicas), not per replica as in tf.estimator: README, "More than one device"."""
    train, evaluation = config.train_distribute, config.eval_distribute
    if evaluation is not None and evaluation is not train:
        raise InvalidValueError(
            f"{DISTRIBUTE_FEATURE}: eval_distribute must be None or the train_distribute strategy "
            "itself (the model trains and evaluates in one graph)"
        )
    return checked_strategy(train)


def _close_at_exit(reference: weakref.ref[Estimator]) -> None:
    estimator = reference()
    if estimator is not None:
        estimator.close()
