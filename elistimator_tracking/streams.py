"""How batches reach the model graph: in-graph iterators, or numpy batches fed from a data session.

The model graph holds, from the start, a small fixed input stage (``GraphInput``): one
iterator per *slot* (training, validation, evaluation, prediction), each with a store
for the dataset it reads, and one tensor per feature that reads the batch of the
iterator named by a string handle fed with each step (TensorFlow's feedable-iterator
pattern). An input function's dataset, serialized in its own graph
(``InputData.serialized``), is loaded into a slot *as a fed value*: its data never
becomes part of the model graph (no meta graph or event file carries it), and a new
input function adds no op. Batches then flow from tf.data's C++ pipeline, read ahead
while the step runs, straight into the step; no batch passes through Python.

``FeedStream`` is the fallback: datasets that cannot be serialized (e.g. reading a
variable), models saved before this input stage, and a prediction started while
another one's generator still holds the prediction slot read numpy batches from a data
session of their own (also read ahead) and feed them.

Both streams do ``run(fetches, feed)``: the fetched values and the batch's size, or
None at the end of the data. Features stay placeholders: feeding them (one-off
``predict``) bypasses the iterators.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from ._tf import tf
from .inputs import FeatureKey, InputData, InputSignature, batch_size

SLOTS = ("training", "validation", "evaluation", "prediction")
SCOPE = "elistimator_input"
Stream = Union["GraphStream", "FeedStream"]


@dataclass
class GraphInput:
    """The input stage's handles in the model graph (see the module docstring)."""

    dataset_graph: tf.Tensor  # a serialized dataset to load into a slot
    selector: tf.Tensor  # the string handle of the iterator a step reads from
    size: tf.Tensor  # the number of examples in the batch a step reads
    load: Dict[str, tf.Operation]  # slot -> store the fed dataset
    start: Dict[str, tf.Operation]  # slot -> (re)start its iterator over the stored dataset
    clear: Dict[str, tf.Operation]  # slot -> free the stored dataset
    handles: Dict[str, tf.Tensor]  # slot -> its iterator's string handle

    @classmethod
    def build(cls, graph: tf.Graph, signature: InputSignature
              ) -> Tuple["GraphInput", InputSignature, Dict[FeatureKey, tf.Tensor]]:
        """The input stage and the feature tensors (``features/<key>``) in ``graph``; return it, the
        signature with tensor names, and the features."""
        types = [tf.as_dtype(f.dtype) for f in signature] + [tf.int32]
        shapes = [tf.TensorShape(None if f.shape is None else list(f.shape)) for f in signature] + [[]]
        structure = {"output_types": types, "output_shapes": shapes}
        load, start, clear, handles = {}, {}, {}, {}
        with graph.as_default(), tf.name_scope(SCOPE), tf.device("/cpu:0"):  # tf.data runs on the host
            dataset_graph = tf.placeholder(tf.string, [], name="dataset_graph")
            dataset = tf.raw_ops.DatasetFromGraph(graph_def=dataset_graph)
            selector = tf.placeholder(tf.string, [], name="selector")
            for slot in SLOTS:
                with tf.name_scope(slot):
                    store = tf.raw_ops.VarHandleOp(dtype=tf.variant, shape=[], shared_name=f"{SCOPE}_{slot}")
                    load[slot] = tf.raw_ops.AssignVariableOp(resource=store, value=dataset, name="load")
                    iterator = tf.raw_ops.IteratorV2(shared_name="", container="", **structure)
                    stored = tf.raw_ops.ReadVariableOp(resource=store, dtype=tf.variant)
                    start[slot] = tf.raw_ops.MakeIterator(dataset=stored, iterator=iterator, name="start")
                    clear[slot] = tf.raw_ops.DestroyResourceOp(resource=store, ignore_lookup_error=True, name="clear")
                    handles[slot] = tf.raw_ops.IteratorToStringHandle(resource_handle=iterator, name="handle")
            current = tf.raw_ops.IteratorFromStringHandleV2(string_handle=selector, **structure)
            values = tf.raw_ops.IteratorGetNext(iterator=current, name="next", **structure)
        named, features = signature.with_placeholders(graph, values[:-1])
        return cls(dataset_graph, selector, values[-1], load, start, clear, handles), named, features

    def to_names(self) -> Dict[str, Any]:
        return {"dataset_graph": self.dataset_graph.name, "selector": self.selector.name, "size": self.size.name,
                **{part: {slot: element.name for slot, element in getattr(self, part).items()}
                   for part in ("load", "start", "clear", "handles")}}

    @classmethod
    def from_names(cls, graph: tf.Graph, names: Mapping[str, Any]) -> "GraphInput":
        """The input stage of a graph imported from a saved meta graph (its ops go back on the host)."""
        for op in graph.get_operations():
            if op.name.startswith(SCOPE + "/"):
                op._set_device("/device:CPU:0")  # import_meta_graph(clear_devices=True) cleared it
        element = graph.as_graph_element
        return cls(element(names["dataset_graph"]), element(names["selector"]), element(names["size"]),
                   *({slot: element(name) for slot, name in names[part].items()}
                     for part in ("load", "start", "clear", "handles")))


class InputSlots:
    """A ``GraphInput`` in one session: its iterators' handles, and which stream holds each slot."""

    def __init__(self, graph_input: GraphInput, session: tf.Session):
        self.input, self.session = graph_input, session
        self.handles: Dict[str, bytes] = session.run(graph_input.handles)
        self._holders: "weakref.WeakValueDictionary[str, GraphStream]" = weakref.WeakValueDictionary()

    def free(self, slot: str) -> bool:
        """No open stream reads this slot (e.g. an unfinished ``predict`` generator)."""
        return self._holders.get(slot) is None

    def hold(self, slot: str, stream: "GraphStream") -> None:
        self._holders[slot] = stream

    def release(self, slot: str, stream: "GraphStream") -> None:
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
        self._slots, self._slot, self._serialized = slots, slot, serialized
        self._feed = {slots.input.selector: slots.handles[slot]}
        self._closed = False
        slots.hold(slot, self)

    def restart(self) -> None:
        """Begin a pass over the data (the dataset is loaded into the slot the first time)."""
        graph_input, session = self._slots.input, self._slots.session
        if self._serialized is not None:
            session.run(graph_input.load[self._slot], {graph_input.dataset_graph: self._serialized})
            self._serialized = None
        session.run(graph_input.start[self._slot])

    def run(self, fetches: Any, feed: Mapping[tf.Tensor, Any]) -> Optional[Tuple[Any, int]]:
        """``fetches`` on the next batch, with its size; None at the end of the data."""
        try:
            values, size = self._slots.session.run((fetches, self._slots.input.size), {**self._feed, **feed})
        except tf.errors.OutOfRangeError:
            return None
        return values, int(size)

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

    def run(self, fetches: Any, feed: Mapping[tf.Tensor, Any]) -> Optional[Tuple[Any, int]]:
        batch = self._reader.next_batch()
        if batch is None:
            return None
        values = self._session.run(fetches, {**{self._inputs[k]: v for k, v in batch.items()}, **feed})
        return values, batch_size(batch)

    def close(self) -> None:
        self._reader.close()


def open_stream(data: InputData, slot: str, slots: Optional[InputSlots], session: tf.Session,
                inputs: Mapping[FeatureKey, tf.Tensor], signature: InputSignature) -> Stream:
    """The in-graph stream through ``slot`` when the model has an input stage, the slot is free and
    the dataset is self-contained; else a ``FeedStream``."""
    if slots is not None and slots.free(slot):
        serialized = data.serialized(signature)
        if serialized is not None:
            return GraphStream(slots, slot, data, serialized)
    return FeedStream(data, session, inputs)
