"""How batches reach the model graph: in-graph iterators, or numpy batches fed from a data session.

The model graph holds, from the start, a small fixed input stage (``GraphInput``): a store
per *slot* (training, validation, evaluation, prediction) for the dataset it reads, three
iterators (training; evaluation, shared by the validation and evaluation slots, whose
passes never overlap; prediction, whose generators may stay open), and one tensor per
feature that reads the next batch of the iterator the step selects: the training
iterator when ``is_training`` is fed True (training steps), the prediction iterator when
``predicting`` is fed True, else the evaluation iterator. The choice is made in the graph
(v1 ``Switch``/``Merge``, as ``tf.cond`` built them), so a training or evaluation step
feeds nothing it would not feed anyway.

An input function's dataset, serialized in its own graph (``InputData.serialized``), is
loaded into a slot *as a fed value*: its data never becomes part of the model graph (no
meta graph or event file carries it), and a new input function adds no op. Batches then
flow from tf.data's C++ pipeline (which reads ahead on its own threads) straight into the
step; no batch passes through Python.

``FeedStream`` is the fallback: datasets that cannot be serialized (e.g. reading a
variable), models saved before this input stage, and a prediction started while another
one's generator still holds the prediction iterator read numpy batches from a data
session of their own and feed them.

Both streams do ``run(fetches, feed, sized)``: the fetched values (and the batch's size
when asked), or None at the end of the data. Features stay placeholders: feeding them
(one-off ``predict``) bypasses the iterators.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from ._tf import tf
from .inputs import FeatureKey, InputData, InputSignature, batch_size

SLOTS = ("training", "validation", "evaluation", "prediction")
ITERATOR_OF = {
    "training": "training",
    "validation": "evaluation",
    "evaluation": "evaluation",
    "prediction": "prediction",
}
SCOPE = "elistimator_input"
Stream = Union["GraphStream", "FeedStream"]


@dataclass
class GraphInput:
    """The input stage's handles in the model graph (see the module docstring)."""

    dataset_graph: tf.Tensor  # a serialized dataset to load into a slot
    predicting: tf.Tensor  # fed True: non-training steps read the prediction iterator
    load: dict[str, tf.Operation]  # slot -> store the fed dataset
    start: dict[str, tf.Operation]  # slot -> (re)start the slot's iterator over its stored dataset
    clear: dict[str, tf.Operation]  # slot -> free the stored dataset
    shapes: dict[FeatureKey, tf.Tensor]  # feature -> its shape in the batch read (for the batch size)

    @classmethod
    def build(
        cls, graph: tf.Graph, signature: InputSignature, is_training: tf.Tensor
    ) -> tuple[GraphInput, InputSignature, dict[FeatureKey, tf.Tensor]]:
        """The input stage and the feature tensors (``features/<key>``) in ``graph``; return it, the
        signature with tensor names, and the features."""
        order = signature.element_order()
        structure = {
            "output_types": [tf.as_dtype(signature[k].dtype) for k in order],
            "output_shapes": [signature[k].tensor_shape for k in order],
        }
        load, start, clear = {}, {}, {}
        with graph.as_default(), tf.name_scope(SCOPE), tf.device("/cpu:0"):  # tf.data runs on the host
            dataset_graph = tf.placeholder(tf.string, [], name="dataset_graph")
            dataset = tf.raw_ops.DatasetFromGraph(graph_def=dataset_graph)
            predicting = tf.placeholder_with_default(False, [], name="predicting")
            iterators = {
                name: tf.raw_ops.IteratorV2(shared_name="", container="", name=name, **structure)
                for name in ("training", "evaluation", "prediction")
            }
            for slot in SLOTS:
                with tf.name_scope(slot):
                    store = tf.raw_ops.VarHandleOp(dtype=tf.variant, shape=[], shared_name=f"{SCOPE}_{slot}")
                    load[slot] = tf.raw_ops.AssignVariableOp(resource=store, value=dataset, name="load")
                    stored = tf.raw_ops.ReadVariableOp(resource=store, dtype=tf.variant)
                    start[slot] = tf.raw_ops.MakeIterator(
                        dataset=stored, iterator=iterators[ITERATOR_OF[slot]], name="start"
                    )
                    clear[slot] = tf.raw_ops.DestroyResourceOp(resource=store, ignore_lookup_error=True, name="clear")
            values = _selected_batch(iterators, is_training, predicting, structure)
        named, features = signature.with_placeholders(graph, [values[order.index(f.key)] for f in signature])
        with graph.as_default(), tf.name_scope(SCOPE + "_shapes"):  # where the features are, not pinned to the host
            shapes = {key: tf.shape(tensor, out_type=tf.int32) for key, tensor in features.items()}
        return cls(dataset_graph, predicting, load, start, clear, shapes), named, features

    def to_names(self) -> dict[str, Any]:
        return {
            "dataset_graph": self.dataset_graph.name,
            "predicting": self.predicting.name,
            "shapes": [tensor.name for tensor in self.shapes.values()],
            **{
                part: {slot: element.name for slot, element in getattr(self, part).items()}
                for part in ("load", "start", "clear")
            },
        }

    @classmethod
    def from_names(cls, graph: tf.Graph, names: Mapping[str, Any], signature: InputSignature) -> GraphInput:
        """The input stage of a graph imported from a saved meta graph (its ops go back on the host)."""
        for op in graph.get_operations():
            if op.name.startswith(SCOPE + "/"):
                op._set_device("/device:CPU:0")  # import_meta_graph(clear_devices=True) cleared it
        element = graph.as_graph_element
        load, start, clear = (
            {slot: element(name) for slot, name in names[part].items()} for part in ("load", "start", "clear")
        )
        shapes = {feature.key: element(name) for feature, name in zip(signature, names["shapes"], strict=False)}
        return cls(element(names["dataset_graph"]), element(names["predicting"]), load, start, clear, shapes)


def _selected_batch(
    iterators: Mapping[str, tf.Tensor], is_training: tf.Tensor, predicting: tf.Tensor, structure: Mapping[str, Any]
) -> list[tf.Tensor]:
    """The next batch of the training iterator when ``is_training``, else of the prediction iterator
    when ``predicting``, else of the evaluation iterator. Only the selected ``IteratorGetNext`` runs:
    the others wait on an untaken ``Switch`` branch (dead, so never executed), and ``Merge``
    forwards the one batch read."""
    not_training, training = tf.raw_ops.Switch(data=is_training, pred=is_training)
    with tf.control_dependencies([tf.identity(not_training)]):  # dead in training steps, and so is all below
        evaluating, predicting_now = tf.raw_ops.Switch(data=predicting, pred=predicting)
    batches = []
    for name, taken in (("training", training), ("evaluation", evaluating), ("prediction", predicting_now)):
        with tf.control_dependencies([tf.identity(taken)]):
            batches.append(tf.raw_ops.IteratorGetNext(iterator=iterators[name], name=f"next_{name}", **structure))
    return [tf.raw_ops.Merge(inputs=list(component))[0] for component in zip(*batches, strict=False)]


class InputSlots:
    """A ``GraphInput`` in one session, and the open prediction stream that holds the prediction iterator."""

    def __init__(self, graph_input: GraphInput, session: tf.Session):
        self.input, self.session = graph_input, session
        self._holders: weakref.WeakValueDictionary[str, GraphStream] = weakref.WeakValueDictionary()

    def free(self, slot: str) -> bool:
        """Whether a new stream may read ``slot`` in-graph: all may, but the prediction iterator
        serves one open ``predict`` generator at a time."""
        return slot != "prediction" or self._holders.get(slot) is None

    def hold(self, slot: str, stream: GraphStream) -> None:
        self._holders[slot] = stream

    def release(self, slot: str, stream: GraphStream) -> None:
        """Free the slot and the dataset it stores (nothing to free once the session is closed)."""
        if self._holders.get(slot) is stream:
            del self._holders[slot]
        if not self.session._closed:
            self.session.run(self.input.clear[slot])


class GraphStream:
    """A dataset read in-graph through one slot of the model's input stage."""

    def __init__(self, slots: InputSlots, slot: str, data: InputData, serialized: bytes):
        self.role, self.signature = data.role, data.signature
        self._data = data  # its graph keeps the pipeline's Python functions (generators, py_function) registered
        self._slots, self._slot = slots, slot
        self._serialized: bytes | None = serialized  # loaded into the slot at the first restart
        self._feed = {slots.input.predicting: True} if slot == "prediction" else {}
        self._shapes = [slots.input.shapes[key] for key in _size_features(data.signature)]
        self._closed = False
        slots.hold(slot, self)

    def restart(self) -> None:
        """Begin a pass over the data (the dataset is loaded into the slot the first time)."""
        graph_input, session = self._slots.input, self._slots.session
        if self._serialized is not None:
            session.run(graph_input.load[self._slot], {graph_input.dataset_graph: self._serialized})
            self._serialized = None
        session.run(graph_input.start[self._slot])

    def run(self, fetches: Any, feed: Mapping[tf.Tensor, Any], sized: bool = False) -> tuple[Any, int | None] | None:
        """``fetches`` on the next batch, and its size when ``sized``; None at the end of the data."""
        feed = {**self._feed, **feed} if self._feed else feed
        try:
            if not sized:
                return self._slots.session.run(fetches, feed), None
            values, shapes = self._slots.session.run((fetches, self._shapes), feed)
        except tf.errors.OutOfRangeError:
            return None
        return values, next((int(shape[0]) for shape in shapes if len(shape)), 1)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._slots.release(self._slot, self)


class FeedStream:
    """A dataset read as numpy batches in a session of its own, fed to the feature placeholders."""

    def __init__(self, data: InputData, session: tf.Session, inputs: Mapping[FeatureKey, tf.Tensor]):
        self.role, self.signature = data.role, data.signature
        self._reader, self._session, self._inputs = data.reader(), session, inputs

    def restart(self) -> None:
        self._reader.restart()

    def run(self, fetches: Any, feed: Mapping[tf.Tensor, Any], sized: bool = False) -> tuple[Any, int | None] | None:
        batch = self._reader.next_batch()
        if batch is None:
            return None
        values = self._session.run(fetches, {**{self._inputs[k]: v for k, v in batch.items()}, **feed})
        return values, batch_size(batch) if sized else None

    def close(self) -> None:
        self._reader.close()


def _size_features(signature: InputSignature) -> list[FeatureKey]:
    """The features whose shapes give a batch's size (``inputs.batch_size``): in order, up to the
    first that is not a scalar (one, unless ranks are unknown until the batch is read)."""
    keys = []
    for feature in signature:
        if feature.shape is not None and len(feature.shape) == 0:
            continue
        keys.append(feature.key)
        if feature.shape is not None:
            break
    return keys


def open_stream(
    data: InputData,
    slot: str,
    slots: InputSlots | None,
    session: tf.Session,
    inputs: Mapping[FeatureKey, tf.Tensor],
    signature: InputSignature,
) -> Stream:
    """The in-graph stream through ``slot`` when the model has an input stage, the slot is free and
    the dataset can be serialized; else a ``FeedStream``."""
    if slots is not None and slots.free(slot):
        serialized = data.serialized(signature)
        if serialized is not None:
            return GraphStream(slots, slot, data, serialized)
    return FeedStream(data, session, inputs)
