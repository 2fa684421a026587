"""The model graph: built once from the model function, and every handle the loops need.

All ops the Elistimator ever runs are created here, at build time, so training,
evaluation and prediction never add to the graph afterwards.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import distribute
from ._tf import tf
from .errors import ElistimatorWarning, InvalidValueError, UsageError
from .inputs import FeatureKey, InputSignature
from .specs import EvaluationSpec, PredictSpec, TrainSpec, check_model_fn_result
from .streams import GraphInput

ModelFn = Callable[[dict[FeatureKey, tf.Tensor], tf.Tensor, dict], Any]


@dataclass
class ModelGraph:
    graph: tf.Graph
    signature: InputSignature
    inputs: dict[FeatureKey, tf.Tensor]
    is_training: tf.Tensor
    global_step: tf.Variable
    train: TrainSpec
    evaluation: EvaluationSpec | None
    predict: PredictSpec | None
    #: runs one training step and gives the global step after it (fetching the variable
    #: beside the train op gives a value that is not deterministic); increments the
    #: global step when the train op does not
    train_step: tf.Tensor
    reset_metrics: tf.Operation | None
    user_summaries: tf.Tensor | None
    init: tf.Operation
    saver: tf.train.Saver
    #: initializes the local (metric) variables only: what a restored checkpoint does not set
    local_init: tf.Operation | None = None
    #: the in-graph input stage; None in graphs saved before it existed (their features are fed)
    input: GraphInput | None = None
    #: the tf.distribute strategy the graph was built with (None: one device, or a loaded graph)
    strategy: Any = None
    #: a graph built with a strategy: the same model on one device, whose meta graph and names are
    #: saved with its checkpoints (they load without the strategy: no replicas, no collective ops)
    portable: ModelGraph | None = None
    _needs: dict[str, list[FeatureKey]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        model_fn: ModelFn,
        params: dict[str, Any],
        signature: InputSignature,
        saver_args: Mapping[str, Any],
        strategy: Any = None,
    ) -> ModelGraph:
        """Call ``model_fn`` in a new graph fed by placeholders for ``signature`` (once per replica
        of ``strategy``, when given: ``distribute.py``)."""
        portable = None if strategy is None else cls.build(model_fn, params, signature, saver_args)
        graph = tf.Graph()
        with graph.as_default(), distribute.building(strategy):
            global_step = tf.train.get_or_create_global_step()
            is_training = tf.placeholder_with_default(False, shape=[], name="is_training")
            graph_input, signature, inputs = GraphInput.build(graph, signature, is_training)
            local_before = {id(v) for v in _metric_variables(graph)}
            if strategy is None:
                train, evaluation, predict = check_model_fn_result(model_fn(inputs, is_training, params), graph)
            else:
                train, evaluation, predict = distribute.replicated_specs(
                    strategy, model_fn, inputs, is_training, params, graph
                )
            user_summaries = tf.summary.merge_all()
            with tf.name_scope("elistimator"):
                train_step = _train_step(train.train_op, global_step)
                new_metric_vars = [v for v in _metric_variables(graph) if id(v) not in local_before]
                reset_metrics = (
                    tf.variables_initializer(new_metric_vars, name="reset_metrics") if evaluation is not None else None
                )
                local_init = tf.local_variables_initializer()
                init = tf.group(tf.global_variables_initializer(), local_init, name="init")
            saver = new_saver(saver_args)
        return cls(
            graph=graph,
            signature=signature,
            inputs=inputs,
            is_training=is_training,
            global_step=global_step,
            train=train,
            evaluation=evaluation,
            predict=predict,
            train_step=train_step,
            reset_metrics=reset_metrics,
            user_summaries=user_summaries,
            init=init,
            saver=saver,
            local_init=local_init,
            input=graph_input,
            strategy=strategy,
            portable=portable,
        )

    def to_names(self) -> dict[str, Any]:
        """Everything ``from_names`` needs to find these handles in an imported graph (JSON-ready)."""
        if self.portable is not None:
            return self.portable.to_names()  # the graph saved with the checkpoints

        def name(element):
            return None if element is None else element.name

        return {
            "signature": self.signature.to_json(),
            "is_training": self.is_training.name,
            "train": self.train.to_names(),
            "evaluation": self.evaluation.to_names() if self.evaluation else None,
            "predict": self.predict.to_names() if self.predict else None,
            "train_step": self.train_step.name,
            "reset_metrics": name(self.reset_metrics),
            "user_summaries": name(self.user_summaries),
            "init": self.init.name,
            "local_init": name(self.local_init),
            "input": self.input.to_names() if self.input else None,
        }

    @classmethod
    def from_names(cls, graph: tf.Graph, names: Mapping[str, Any], saver: tf.train.Saver) -> ModelGraph:
        """The handles of a graph imported from a saved meta graph."""

        def element(key):
            return None if names.get(key) is None else graph.as_graph_element(names[key])

        signature = InputSignature.from_json(names["signature"])
        global_step = tf.train.get_global_step(graph)
        if global_step is None:
            raise InvalidValueError("the saved meta graph has no global step variable")
        return cls(
            graph=graph,
            signature=signature,
            inputs=signature.tensors(graph),
            is_training=element("is_training"),
            global_step=global_step,
            train=TrainSpec.from_names(graph, names["train"]),
            evaluation=EvaluationSpec.from_names(graph, names["evaluation"]) if names["evaluation"] else None,
            predict=PredictSpec.from_names(graph, names["predict"]) if names["predict"] else None,
            train_step=element("train_step"),
            reset_metrics=element("reset_metrics"),
            user_summaries=element("user_summaries"),
            init=element("init"),
            saver=saver,
            local_init=element("local_init"),
            input=GraphInput.from_names(graph, names["input"], signature) if names.get("input") else None,
        )

    def replace_saver(self, saver_args: Mapping[str, Any]) -> None:
        with self.graph.as_default():
            self.saver = new_saver(saver_args)
        if self.portable is not None:
            self.portable.replace_saver(saver_args)

    def save(self, session: tf.Session, prefix: str) -> None:
        """A checkpoint of the variables at ``prefix``, with the meta graph that loads it (the
        portable graph's, for a graph built with a strategy)."""
        if self.portable is None:
            self.saver.save(session, prefix, write_state=False)
            return
        self.saver.save(session, prefix, write_state=False, write_meta_graph=False)
        with self.portable.graph.as_default():
            self.portable.saver.export_meta_graph(prefix + ".meta")

    def evaluation_spec(self) -> EvaluationSpec:
        """The EvaluationSpec (setup refuses validation data without one, so only evaluate() meets the error)."""
        if self.evaluation is None:
            raise UsageError("evaluate() needs an EvaluationSpec, but model_fn returned None for it")
        return self.evaluation

    def predict_spec(self) -> PredictSpec:
        if self.predict is None:
            raise UsageError("predict() needs a PredictSpec, but model_fn returned None for it")
        return self.predict

    def train_needs(self) -> list[FeatureKey]:
        return self._needed("train", self.train)

    def evaluation_needs(self) -> list[FeatureKey]:
        return self._needed("evaluation", self.evaluation)

    def predict_needs(self) -> list[FeatureKey]:
        return self._needed("predict", self.predict)

    def _needed(self, name: str, spec: Any) -> list[FeatureKey]:
        """The features ``spec``'s tensors read (worked out once: the graph's specs never change)."""
        if name not in self._needs:
            self._needs[name] = features_needed(spec.graph_elements(), self.inputs) if spec else []
        return self._needs[name]


def new_saver(saver_args: Mapping[str, Any]) -> tf.train.Saver:
    """A tf.train.Saver that deletes nothing: the Elistimator prunes by its own index."""
    return tf.train.Saver(**{**saver_args, "max_to_keep": None})


def _train_step(train_op: tf.Operation, global_step: tf.Variable) -> tf.Tensor:
    with tf.control_dependencies([train_op]):
        if _writes_variable(train_op, global_step):
            return tf.identity(global_step.read_value(), name="train_step")
        warnings.warn(
            "train_op does not increment the global step (pass global_step="
            "tf.train.get_global_step() to optimizer.minimize); the Elistimator "
            "increments it after every training step",
            ElistimatorWarning,
            stacklevel=5,
        )
        return tf.identity(tf.assign_add(global_step, 1), name="train_step")


def upstream_ops(roots: Iterable[tf.Tensor | tf.Operation]) -> Iterator[tf.Operation]:
    """Every op that ``roots`` depend on (data and control inputs), each once."""
    seen = set()
    stack = [r if isinstance(r, tf.Operation) else r.op for r in roots]
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        yield op
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)


def features_needed(
    fetches: Iterable[tf.Tensor | tf.Operation], inputs: Mapping[FeatureKey, tf.Tensor]
) -> list[FeatureKey]:
    """The feature keys whose placeholders ``fetches`` depend on, in signature order."""
    placeholders = {tensor.op: key for key, tensor in inputs.items()}
    found = {placeholders[op] for op in upstream_ops(fetches) if op in placeholders}
    return [key for key in inputs if key in found]


def _writes_variable(op: tf.Operation, variable: tf.Variable) -> bool:
    """Whether ``op`` or anything it depends on assigns to ``variable``."""
    variable = distribute.primary(variable)
    return any(
        current.type in _VARIABLE_WRITES and current.inputs and current.inputs[0].op is variable.op
        for current in upstream_ops([op])
    )


_VARIABLE_WRITES = {
    "Assign",
    "AssignAdd",
    "AssignSub",
    "AssignVariableOp",
    "AssignAddVariableOp",
    "AssignSubVariableOp",
    "ScatterUpdate",
}


def _metric_variables(graph: tf.Graph) -> list[tf.Variable]:
    """Variables tf.metrics (and custom metrics) keep their running state in."""
    seen, found = set(), []
    for key in (tf.GraphKeys.METRIC_VARIABLES, tf.GraphKeys.LOCAL_VARIABLES):
        for variable in graph.get_collection(key):
            if id(variable) not in seen:
                seen.add(id(variable))
                found.append(variable)
    return found
