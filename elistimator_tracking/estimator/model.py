"""An estimator ``model_fn`` as an Elistimator model function.

tf.estimator built a new graph per mode and restored the latest checkpoint into it on
every ``train``/``evaluate``/``predict`` call. Here the graph is built once: ``model_fn``
is called for TRAIN, EVAL and PREDICT in that order, in the same graph, on the same
features, with variables shared by name (``tf.AUTO_REUSE``), so the three specs read the
same weights and repeated calls rebuild nothing. TRAIN goes first so ``UPDATE_OPS`` (batch
norm) holds the training copy's updates only; summaries the EVAL and PREDICT copies add are
dropped (tf.estimator wrote none for them either).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from .._tf import tf
from ..errors import EstimatorTypeError, InvalidValueError
from ..model_graph import upstream_ops
from ..specs import EvaluationSpec, PredictSpec, TrainSpec
from .inputs import Layout, call_with
from .sharing import NameCounters, SharedVariables
from .spec import MODES, EstimatorSpec, ModeKeys
from .warm_start import WarmStartSettings
from .warm_start import warm_start as apply_warm_start

MODEL_FN_ARGS = ("features", "labels", "mode", "params", "config")


def check_model_fn(model_fn: Callable, params: Mapping[str, Any] | None) -> None:
    """Refuse a ``model_fn`` tf.estimator refused when it was given: one without ``features``, with
    arguments it cannot be given, or that takes no ``params`` while params are passed."""
    if model_fn is None:
        raise InvalidValueError("model_fn must be provided to Estimator.")
    if not callable(model_fn):
        raise EstimatorTypeError(f"model_fn must be a function, got {type(model_fn).__name__}")
    try:
        parameters = inspect.signature(model_fn).parameters
    except (TypeError, ValueError):
        return
    names = [n for n, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if "features" not in names:
        raise InvalidValueError(f"model_fn ({model_fn}) must include features argument.")
    unknown = [n for n in names if n not in MODEL_FN_ARGS and parameters[n].default is inspect.Parameter.empty]
    if unknown:
        raise InvalidValueError(
            f"model_fn ({model_fn}) has following not expected args: {unknown} (it may take {', '.join(MODEL_FN_ARGS)})"
        )
    if params and "params" not in names:
        raise InvalidValueError(
            f"model_fn ({model_fn}) does not include params argument, but params ({params}) is passed to Estimator."
        )


class EstimatorModel:
    """The Elistimator ``model_fn(features, is_training, params)`` over an estimator ``model_fn``;
    keeps each mode's ``EstimatorSpec`` (its hooks, export outputs) from the last build."""

    def __init__(self, model_fn: Callable, config: Any, layout: Callable[[], Layout]):
        self.model_fn, self.config, self._layout = model_fn, config, layout
        self.warm_start: WarmStartSettings | None = None  # set for a build with no checkpoint to start from
        self.predict_only = False  # a build for prediction without labels: TRAIN and EVAL may fail
        self.__name__ = getattr(model_fn, "__name__", type(model_fn).__name__)  # the experiment's default name
        self.__module__ = str(getattr(model_fn, "__module__", None) or __name__)
        self.__qualname__ = getattr(model_fn, "__qualname__", self.__name__)
        self.specs: dict[str, EstimatorSpec | None] = {}
        self.failures: dict[str, Exception] = {}  # what model_fn raised in EVAL or PREDICT mode
        self.single_prediction = False  # predictions were one tensor (predict yields arrays, not dicts)

    def __call__(
        self, flat: Mapping[str, tf.Tensor], is_training: tf.Tensor, params: Mapping[str, Any]
    ) -> tuple[TrainSpec, EvaluationSpec | None, PredictSpec | None]:
        layout = self._layout()
        features, labels = layout.unflatten(flat)
        graph = tf.get_default_graph()
        if self.config.tf_random_seed is not None:
            graph.seed = self.config.tf_random_seed
        specs: dict[str, EstimatorSpec | None] = {}
        names, shared = NameCounters(), SharedVariables()
        self.failures = {}
        first = ModeKeys.PREDICT if self.predict_only else ModeKeys.TRAIN
        with tf.variable_scope(tf.get_variable_scope(), reuse=tf.AUTO_REUSE):
            for mode in (first, *(m for m in MODES if m != first)):
                names.rewind()  # each mode names its layers as in a graph of its own: dense, dense_1, ...
                variables = set(graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES))
                summaries = set(graph.get_collection(tf.GraphKeys.SUMMARIES))
                if mode == first:  # it makes the variables: it must build
                    with shared.recording():
                        specs[mode] = self.call(mode, features, labels if mode != ModeKeys.PREDICT else None, params)
                    self._warm_start()
                    continue
                try:  # tf.estimator called a mode only when asked to: a failure waits until then
                    with shared.sharing():
                        spec = self.call(mode, features, labels if mode != ModeKeys.PREDICT else None, params)
                    _require_no_new_variables(spec, graph, variables)
                    _require_free_metric_names(spec.eval_metric_ops)
                    specs[mode] = spec
                except Exception as error:  # noqa: BLE001 -- raised again by evaluate()/predict()
                    self.failures[mode], specs[mode] = error, None
                _drop_new_summaries(graph, summaries)
        self.specs = specs
        train, evaluation, predict = (specs[m] for m in MODES)
        self.single_prediction = predict is not None and isinstance(predict.predictions, tf.Tensor)
        if train is None:  # a graph to predict with only (rebuilt before it trains): a step that changes nothing
            train = EstimatorSpec(
                ModeKeys.TRAIN, loss=tf.constant(0.0), train_op=tf.assign_add(tf.train.get_global_step(), 0)
            )
        return (
            TrainSpec(train.loss, train.train_op),
            EvaluationSpec(evaluation.loss, evaluation.metric_pairs()) if evaluation else None,
            PredictSpec(predict.predictions) if predict else None,
        )

    def require(self, mode: str) -> None:
        """Raise what ``model_fn`` raised in ``mode`` when the graph was built, if it did."""
        error = self.failures.get(mode)
        if error is None:
            return
        message = f"model_fn failed in mode {mode!r} when the graph was built: {error}"
        try:
            again = type(error)(message)
        except Exception:  # noqa: BLE001 -- an exception type that takes other arguments
            again = RuntimeError(message)
        raise again from error

    def call(self, mode: str, features: Any, labels: Any, params: Mapping[str, Any]) -> EstimatorSpec:
        """``model_fn`` for ``mode`` (a copy of a features dict: model functions may pop from it)."""
        features = dict(features) if isinstance(features, Mapping) else features
        spec = call_with(
            self.model_fn,
            "model_fn",
            {"features": features, "labels": labels, "mode": mode, "params": dict(params), "config": self.config},
            required=("features",),
        )
        if not isinstance(spec, EstimatorSpec):
            raise EstimatorTypeError(
                f"model_fn should return an EstimatorSpec (mode {mode!r}), got {type(spec).__name__}: {spec!r}"
            )
        if spec.mode != mode:
            raise InvalidValueError(
                f"model_fn was called with mode {mode!r} but returned an EstimatorSpec for mode {spec.mode!r}"
            )
        return spec

    def hooks(self, mode: str) -> tuple[Any, ...]:
        """The hooks the last build's spec for ``mode`` asked for."""
        spec = self.specs.get(mode)
        if spec is None:
            return ()
        if mode == ModeKeys.TRAIN:
            return spec.training_chief_hooks + spec.training_hooks
        return spec.evaluation_hooks if mode == ModeKeys.EVAL else spec.prediction_hooks

    def _warm_start(self) -> None:
        """Start the variables ``warm_start`` chooses from its checkpoint, as tf.estimator did for a model
        whose directory held no checkpoint (after ``model_fn`` made them, before they are initialized)."""
        if self.warm_start is not None:
            apply_warm_start(self.warm_start)


def _require_no_new_variables(spec: EstimatorSpec, graph: tf.Graph, before: set) -> None:
    """Raise when the EVAL or PREDICT outputs read variables TRAIN did not make: they would never be
    trained. Unused ones (an optimizer built in every mode) are harmless."""
    new = {v.op: v.op.name for v in graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES) if v not in before}
    outputs = [spec.loss, *tf.nest.flatten(spec.predictions)] + [
        t for pair in spec.metric_pairs().values() for t in pair
    ]
    used = sorted(new[op] for op in upstream_ops(t for t in outputs if t is not None) if op in new)
    if used:
        raise InvalidValueError(
            f"model_fn created new variables in mode {spec.mode!r} that TRAIN did not ({used[:5]}): "
            "the three modes share one graph and its variables, so every mode must create the same "
            "variables, in the same order (create them before branching on mode)"
        )


def _require_free_metric_names(metrics: Mapping[str, Any]) -> None:
    """tf.estimator refused ``eval_metric_ops`` named as its own entries of ``evaluate()``'s result."""
    for name in ("global_step", "loss"):
        if name in metrics:
            raise InvalidValueError(
                f"Metric with name `{name}` is not allowed, because Estimator already defines a default metric "
                "with the same name."
            )


def _drop_new_summaries(graph: tf.Graph, before: set) -> None:
    collection = graph.get_collection_ref(tf.GraphKeys.SUMMARIES)
    collection[:] = [summary for summary in collection if summary in before]
