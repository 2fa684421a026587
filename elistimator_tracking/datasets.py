"""What data a run used: a name, a digest, the schema and the files, for each input function.

The digest never reads the data. It hashes what defines the pipeline in the graph: the ops
that make the dataset (their types and attributes, in order: ``batch(8)``, ``shuffle(100,
seed=1)``), the values of their constants (the arrays ``from_tensor_slices`` captured, file
names) and, for each file a constant names (``TFRecordDataset``, ``TextLineDataset``,
``list_files`` patterns), its path, size and modification time. So a digest changes when the
arrays, the files or the pipeline change, and stays the same across runs for the same data
(an unseeded shuffle is the same pipeline every time). Its cost is a hash of the captured
arrays, taken from the dataset the input stream already built: measured in
``bench/lineage_cost.py`` (docs/performance.md). A ``from_generator``
dataset's values are produced by Python code the graph does not hold: its digest covers the
pipeline only.

The core never imports mlflow: the tracking listener turns a ``DataDescription`` into an
MLflow dataset of the run.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InvalidTypeError, InvalidValueError

#: input tags of an MLflow dataset input: what the data was used for
CONTEXTS = ("training", "validation", "evaluation")
MAX_SOURCE_FILES = 100  # recorded by name (all of them count in the digest)
_FILE_OPS = ("MatchingFiles",)  # their string inputs are glob patterns
_COUNTER = re.compile(rb"_\d+")


@dataclass(frozen=True)
class DataDescription:
    """An input function's data as a run records it (``features``: ``Feature.to_json()`` dicts)."""

    name: str
    context: str
    digest: str
    features: tuple[dict[str, Any], ...]
    files: tuple[str, ...]  # empty: the data is in memory (captured arrays) or made by code
    file_count: int


def named_input(input_fn: Callable[[], Any], name: str) -> Callable[[], Any]:
    """``input_fn`` recorded under ``name`` in the run's datasets (by default its function's name).

    Args:
        input_fn: an input function (no arguments, returns a ``tf.data.Dataset``).
        name: what the MLflow run calls the data (its *Datasets* column).

    Returns:
        An input function that calls ``input_fn``, carrying the name.

    Raises:
        InvalidValueError: ``name`` is empty.
        InvalidTypeError: ``input_fn`` is not callable.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidValueError(f"a dataset name must be a non-empty string, got {name!r}")
    if not callable(input_fn):
        raise InvalidTypeError(f"named_input needs an input function, got {type(input_fn).__name__}")

    def named() -> Any:
        return input_fn()

    named.dataset_name = name  # type: ignore[attr-defined]
    named.__name__ = named.__qualname__ = name
    return named


def dataset_name(input_fn: Callable[[], Any], context: str) -> str:
    """The name a run records for ``input_fn``'s data: ``named_input``'s, else the function's name."""
    name = getattr(input_fn, "dataset_name", None) or getattr(input_fn, "__name__", "")
    return f"{context}-data" if not name or name == "<lambda>" else str(name)


def describe_input(input_fn: Callable[[], Any], context: str) -> DataDescription:
    """What a run records for ``input_fn``'s data, without a run (e.g. to check whether data still
    has a run's digest): the dataset is built in a graph of its own, then dropped; nothing is read."""
    from ._tf import tf
    from .inputs import InputSignature

    with tf.Graph().as_default():
        dataset = input_fn()
        signature = InputSignature.from_element_spec(dataset.element_spec, context)
        return describe(dataset, signature, dataset_name(input_fn, context), context)


def described(data: Any) -> Callable[[], DataDescription]:
    """What ``data`` (an ``inputs.InputData``) holds, described when called: the ``on_input``
    moment's promise (a listener that records datasets calls it; nothing is read or built again)."""
    return functools.partial(describe, data.dataset, data.signature, dataset_name(data.input_fn, data.role), data.role)


def describe(dataset: Any, signature: Any, name: str, context: str) -> DataDescription:
    """The description of ``dataset`` (a graph-mode ``tf.data.Dataset``) with ``signature``."""
    from ._tf import tf

    if context not in CONTEXTS:
        raise InvalidValueError(f"context must be one of {CONTEXTS}, got {context!r}")
    ops = _pipeline(dataset._variant_tensor.op)  # noqa: SLF001 -- the dataset's op in its graph
    digest = hashlib.sha256()
    features = tuple(signature.to_json())
    digest.update(repr([(f["key"], f["dtype"], f["shape"]) for f in features]).encode())
    strings: list[str] = []
    patterns: list[str] = []
    for op in ops:
        digest.update(op.type.encode())
        if op.type == "Const":  # its NodeDef would copy the whole array twice: the value alone, once
            digest.update(_value_bytes(op))
            if op.get_attr("dtype") == tf.string:
                strings.extend(_decoded(op.get_attr("value")))
            continue
        digest.update(_attributes(op.node_def, op.graph))
        if op.type in _FILE_OPS:
            patterns.extend(s for i in op.inputs if i.op.type == "Const" for s in _decoded(i.op.get_attr("value")))
    files = sorted(
        {os.path.abspath(s) for s in strings if _is_file(s)}
        | {os.path.abspath(f) for p in patterns for f in glob.glob(p)}
    )
    for path in files:
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return DataDescription(
        name=name,
        context=context,
        digest=digest.hexdigest()[:16],
        features=features,
        files=tuple(files[:MAX_SOURCE_FILES]),
        file_count=len(files),
    )


def _pipeline(head: Any) -> list[Any]:
    """The ops ``head`` depends on, in the order they were created."""
    seen: dict[int, Any] = {}
    todo = [head]
    while todo:
        op = todo.pop()
        if id(op) in seen:
            continue
        seen[id(op)] = op
        todo.extend(tensor.op for tensor in op.inputs)
        todo.extend(op.control_inputs)
    return sorted(seen.values(), key=lambda op: op._id)  # noqa: SLF001 -- creation order


def _value_bytes(op: Any) -> bytes:
    """A constant's serialized value as TensorFlow holds it (``Operation.get_attr`` without the parse)."""
    from tensorflow.python.client import pywrap_tf_session as c_api
    from tensorflow.python.framework import c_api_util

    from ._tf import tf  # noqa: F401 -- TensorFlow's environment first

    with c_api_util.tf_buffer() as buffer:
        c_api.TF_OperationGetAttrValueProto(op._c_op, "value", buffer)  # noqa: SLF001
        return c_api.TF_GetBuffer(buffer)


def _attributes(node_def: Any, graph: Any) -> bytes:
    """A node's attributes but its constant value, with the functions it calls (``map(fn)``) by
    body: their names carry a per-process counter (``__inference_..._123``), dropped here."""
    parts = []
    for key in sorted(node_def.attr):
        if key == "value":
            continue
        attr = node_def.attr[key]
        parts.append(key.encode() + attr.SerializeToString(deterministic=True))
        if attr.HasField("func"):
            function = graph._get_function(attr.func.name)  # noqa: SLF001 -- its FunctionDef
            if function is not None:
                body = function.definition
                parts.extend(_attributes(node, graph) + node.op.encode() for node in body.node_def)
    return _COUNTER.sub(b"", b"".join(parts))


def _decoded(value: Any) -> Sequence[str]:
    try:
        return [s.decode("utf-8") for s in value.string_val]
    except UnicodeDecodeError:
        return []


def _is_file(text: str) -> bool:
    return 0 < len(text) < 4096 and "\0" not in text and os.path.isfile(text)


def source_of(description: DataDescription) -> str | None:
    """Where the data comes from: the one file, the folder of the files, or None (in memory)."""
    if not description.files:
        return None
    if len(description.files) == 1:
        return description.files[0]
    return os.path.commonpath(description.files)
