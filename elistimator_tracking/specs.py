"""What a model function returns: TrainSpec, EvaluationSpec and PredictSpec.

Each spec checks its fields when it is built, so a wrong type fails inside the
model function with a message naming the field, not later inside a session run.
Specs serialise to tensor/op names (``to_names``) and come back from a graph
(``from_names``), which is how a model directory is reloaded without the model
function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._tf import tf
from .errors import InvalidTypeError, InvalidValueError

MetricOp = tuple[tf.Tensor, tf.Tensor | tf.Operation]


def _type_name(value: Any) -> str:
    return type(value).__name__


def _require_tensor(spec: str, field: str, value: Any) -> tf.Tensor:
    if not isinstance(value, tf.Tensor):
        raise InvalidTypeError(f"{spec}.{field} must be a tf.Tensor, got {_type_name(value)}: {value!r}")
    return value


def _require_scalar_loss(spec: str, loss: Any) -> tf.Tensor:
    loss = _require_tensor(spec, "loss", loss)
    if loss.shape.rank not in (None, 0):
        raise InvalidValueError(f"{spec}.loss must be a scalar tensor (the batch mean), got shape {loss.shape}")
    if not (loss.dtype.is_floating or loss.dtype.is_integer):
        raise InvalidTypeError(f"{spec}.loss must be numeric, got dtype {loss.dtype.name}")
    return loss


def _as_operation(spec: str, field: str, value: Any) -> tf.Operation:
    if isinstance(value, tf.Operation):
        return value
    if isinstance(value, tf.Tensor):
        return value.op
    if isinstance(getattr(value, "op", None), tf.Operation):  # minimize(..., global_step) under tf.distribute
        return value.op  # returns the step's assign, as a variable
    raise InvalidTypeError(
        f"{spec}.{field} must be a tf.Operation (e.g. optimizer.minimize(...)), got {_type_name(value)}: {value!r}"
    )


def _graph_element(graph: tf.Graph, name: str) -> tf.Tensor | tf.Operation:
    return graph.as_graph_element(name)


class TrainSpec:
    """The training loss (scalar batch mean) and the op that runs one training step.

    Args:
        loss: a scalar tensor, the batch's mean loss (logged as ``train/loss``).
        train_op: the op (or a tensor of it) that runs one step, e.g. ``optimizer.minimize(loss,
            global_step=tf.train.get_global_step())``; one that does not advance the global step gets
            a warning, and the Elistimator advances it.

    Raises:
        InvalidTypeError: ``loss`` is not a numeric tensor, or ``train_op`` not an op.
        InvalidValueError: ``loss`` is not a scalar.
    """

    def __init__(self, loss: tf.Tensor, train_op: tf.Operation | tf.Tensor):
        self.loss = _require_scalar_loss("TrainSpec", loss)
        self.train_op = _as_operation("TrainSpec", "train_op", train_op)

    def graph_elements(self) -> list:
        return [self.loss, self.train_op]

    def to_names(self) -> dict[str, str]:
        return {"loss": self.loss.name, "train_op": self.train_op.name}

    @classmethod
    def from_names(cls, graph: tf.Graph, names: Mapping[str, str]) -> TrainSpec:
        return cls(loss=_graph_element(graph, names["loss"]), train_op=_graph_element(graph, names["train_op"]))


class EvaluationSpec:
    """The evaluation loss and the metrics ``validate()`` and ``evaluate()`` report.

    Args:
        loss: a scalar tensor; reported as ``loss``, the exact mean over the examples.
        eval_metric_ops: ``{name: (value_tensor, update_op)}`` as ``tf.metrics.*`` returns them.

    Raises:
        InvalidTypeError: a field of the wrong type (the message names it).
        InvalidValueError: a metric named ``loss``, or a value that is not a scalar.
    """

    def __init__(self, loss: tf.Tensor, eval_metric_ops: Mapping[str, MetricOp] | None = None):
        self.loss = _require_scalar_loss("EvaluationSpec", loss)
        self.metric_ops = self._validated_metric_ops(eval_metric_ops or {})

    @staticmethod
    def _validated_metric_ops(metric_ops: Any) -> dict[str, MetricOp]:
        if not isinstance(metric_ops, Mapping):
            raise InvalidTypeError(
                "EvaluationSpec.eval_metric_ops must be a dict {name: (value_tensor, update_op)}, "
                f"got {_type_name(metric_ops)}"
            )
        checked = {}
        for name, pair in metric_ops.items():
            where = f"EvaluationSpec.eval_metric_ops[{name!r}]"
            if not isinstance(name, str) or not name:
                raise InvalidTypeError(f"EvaluationSpec.eval_metric_ops keys must be non-empty strings, got {name!r}")
            if name == "loss":
                raise InvalidValueError(
                    "EvaluationSpec.eval_metric_ops must not contain 'loss': "
                    "the evaluation loss is reported under that name"
                )
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise InvalidTypeError(
                    f"{where} must be a (value_tensor, update_op) pair as returned by tf.metrics.*, "
                    f"got {_type_name(pair)}: {pair!r}"
                )
            value = _require_tensor("EvaluationSpec", f"eval_metric_ops[{name!r}][0]", pair[0])
            if value.shape.num_elements() not in (None, 1):
                raise InvalidValueError(f"{where} value must be a scalar, got shape {value.shape}")
            update = pair[1]
            if not isinstance(update, (tf.Tensor, tf.Operation)):
                raise InvalidTypeError(
                    f"{where}[1] (update op) must be a tf.Tensor or tf.Operation, got {_type_name(update)}"
                )
            checked[name] = (value, update)
        return checked

    def graph_elements(self) -> list:
        return [self.loss] + [element for pair in self.metric_ops.values() for element in pair]

    def to_names(self) -> dict[str, Any]:
        return {"loss": self.loss.name, "metric_ops": {k: [v.name, u.name] for k, (v, u) in self.metric_ops.items()}}

    @classmethod
    def from_names(cls, graph: tf.Graph, names: Mapping[str, Any]) -> EvaluationSpec:
        metric_ops = {
            k: (_graph_element(graph, v), _graph_element(graph, u)) for k, (v, u) in names["metric_ops"].items()
        }
        return cls(loss=_graph_element(graph, names["loss"]), eval_metric_ops=metric_ops)


class PredictSpec:
    """The model's outputs, what ``predict`` returns and a registered version serves.

    Args:
        output: a dict ``{name: tf.Tensor}``, or one tensor (reported under the key ``'output'``).

    Raises:
        InvalidTypeError: not a tensor or a non-empty dict of tensors with string keys.
    """

    def __init__(self, output: tf.Tensor | Mapping[str, tf.Tensor]):
        if isinstance(output, tf.Tensor):
            output = {"output": output}
        if not isinstance(output, Mapping) or not output:
            raise InvalidTypeError(
                "PredictSpec.output must be a tf.Tensor or a non-empty dict {name: tf.Tensor}, "
                f"got {_type_name(output)}: {output!r}"
            )
        for name, tensor in output.items():
            if not isinstance(name, str) or not name:
                raise InvalidTypeError(f"PredictSpec.output keys must be non-empty strings, got {name!r}")
            _require_tensor("PredictSpec", f"output[{name!r}]", tensor)
        self.output: dict[str, tf.Tensor] = dict(output)

    def graph_elements(self) -> list:
        return list(self.output.values())

    def to_names(self) -> dict[str, str]:
        return {k: t.name for k, t in self.output.items()}

    @classmethod
    def from_names(cls, graph: tf.Graph, names: Mapping[str, str]) -> PredictSpec:
        return cls(output={k: _graph_element(graph, n) for k, n in names.items()})


def check_model_fn_result(result: Any, graph: tf.Graph) -> tuple[TrainSpec, EvaluationSpec | None, PredictSpec | None]:
    """Check what a model function returned: ``(TrainSpec, EvaluationSpec | None, PredictSpec | None)``."""
    expected = "(TrainSpec, EvaluationSpec or None, PredictSpec or None)"
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        got = f"{len(result)} values" if isinstance(result, (tuple, list)) else _type_name(result)
        raise InvalidTypeError(f"model_fn must return 3 values {expected}, got {got}")
    train, evaluation, predict = result
    for position, (value, cls, optional) in enumerate(
        [(train, TrainSpec, False), (evaluation, EvaluationSpec, True), (predict, PredictSpec, True)]
    ):
        if value is None and optional:
            continue
        if not isinstance(value, cls):
            raise InvalidTypeError(
                f"model_fn must return {expected}; value {position} should be "
                f"{cls.__name__}{' or None' if optional else ''}, got {_type_name(value)}"
            )
    for spec in (train, evaluation, predict):
        if spec is not None:
            _require_same_graph(spec, graph)
    return train, evaluation, predict


def _require_same_graph(spec: Any, graph: tf.Graph) -> None:
    for element in spec.graph_elements():
        if element.graph is not graph:
            raise InvalidValueError(
                f"{type(spec).__name__} holds {element.name!r}, which belongs to another graph: "
                "build every tensor inside model_fn from its `features` argument"
            )
