"""Input functions, the input signature, and one-off feeding.

Every input function builds its dataset in a graph of its own (``InputData``), so the
data a ``Dataset.from_tensor_slices`` captures as constants never enters the model
graph (no checkpoint, meta graph or event file carries it), and calling
``evaluate``/``predict`` with fresh input functions never adds ops to the model graph.
How the batches then reach the model is ``streams.py``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._tf import DatasetBase, TensorSpec, new_session, tf
from .errors import InvalidTypeError, InvalidValueError

NO_GPU = tf.ConfigProto(device_count={"GPU": 0})
# Stateful ops (random augmentation, a generator's or py_function's Python call) are serialized as
# they are: the copy runs in this same process, where the Python functions stay registered as long
# as the input's own graph lives (streams keep it).
_KEEP_STATEFUL_OPS = tf.data.experimental.ExternalStatePolicy.IGNORE

FeatureKey = str | int
Batch = dict[FeatureKey, np.ndarray]
InputFn = Callable[[], Any]


@dataclass(frozen=True)
class Feature:
    """One input of the model: its key in ``features``, dtype, shape (None = any) and placeholder name."""

    key: FeatureKey
    dtype: str
    shape: tuple[int | None, ...] | None
    tensor: str = ""

    @property
    def tensor_shape(self) -> tf.TensorShape:
        return tf.TensorShape(None if self.shape is None else list(self.shape))

    def shape_text(self) -> str:
        if self.shape is None:
            return "(any shape)"
        return "(" + ", ".join("?" if d is None else str(d) for d in self.shape) + ")"

    def describe(self) -> str:
        return f"{self.key!r}: {self.dtype} {self.shape_text()}"

    def accepts(self, other: Feature) -> bool:
        return self.dtype == other.dtype and self.tensor_shape.is_compatible_with(other.tensor_shape)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "dtype": self.dtype,
            "shape": None if self.shape is None else list(self.shape),
            "tensor": self.tensor,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Feature:
        shape = data["shape"]
        return cls(
            key=data["key"],
            dtype=data["dtype"],
            shape=None if shape is None else tuple(shape),
            tensor=data.get("tensor", ""),
        )


def _dims(shape: tf.TensorShape) -> tuple[int | None, ...] | None:
    return None if shape.rank is None else tuple(shape.as_list())


def _relaxed(a: Feature, b: Feature) -> Feature:
    """The most specific shape both features fit (dimensions that differ become None)."""
    if a.shape is None or b.shape is None or len(a.shape) != len(b.shape):
        return Feature(a.key, a.dtype, None)
    return Feature(a.key, a.dtype, tuple(x if x == y else None for x, y in zip(a.shape, b.shape, strict=False)))


class InputSignature:
    """The ordered features a dataset yields: names (or tuple positions), dtypes and shapes."""

    def __init__(self, features: Iterable[Feature]):
        self.features: dict[FeatureKey, Feature] = {f.key: f for f in features}

    def __iter__(self):
        return iter(self.features.values())

    def __contains__(self, key: Any) -> bool:
        return key in self.features

    def __getitem__(self, key: FeatureKey) -> Feature:
        return self.features[key]

    def keys(self) -> list[FeatureKey]:
        return list(self.features)

    def element_order(self) -> list[FeatureKey]:
        """The order tf.data flattens an element with these features in: names sorted, positions in order."""
        return sorted(self.features)

    def describe(self) -> str:
        return "{" + ", ".join(f.describe() for f in self) + "}"

    @classmethod
    def from_element_spec(cls, element_spec: Any, role: str) -> InputSignature:
        if isinstance(element_spec, Mapping):
            items = list(element_spec.items())
            for key, _ in items:
                if not isinstance(key, str):
                    raise InvalidTypeError(
                        f"the {role} dataset yields a dict with a non-string key {key!r}; use string keys"
                    )
        elif isinstance(element_spec, tuple):
            items = list(enumerate(element_spec))
        else:
            items = [(0, element_spec)]
        features = []
        for key, spec in items:
            if not isinstance(spec, TensorSpec):
                raise InvalidTypeError(
                    f"the {role} dataset yields {type(spec).__name__} for feature {key!r}; "
                    "only a dense tensor, a flat tuple or a flat dict of dense tensors is supported"
                )
            features.append(Feature(key, spec.dtype.name, _dims(spec.shape)))
        return cls(features)

    def relaxed_with(self, other: InputSignature, role: str) -> InputSignature:
        """This signature widened so that ``other`` (e.g. the validation data) fits it as well."""
        self.require_fits(other, role, relax=True)
        return InputSignature(_relaxed(f, other[f.key]) if f.key in other else f for f in self)

    def require_fits(self, other: InputSignature, role: str, relax: bool = False) -> None:
        """Raise if a dataset with signature ``other`` cannot feed a model with this signature."""
        for feature in other:
            if feature.key not in self:
                raise InvalidValueError(
                    f"the {role} dataset yields feature {feature.key!r}, which the model's input "
                    f"signature lacks; the signature is {self.describe()}"
                )
            mine = self[feature.key]
            fits = mine.dtype == feature.dtype if relax else mine.accepts(feature)
            if not fits:
                raise InvalidValueError(
                    f"the {role} dataset yields {feature.describe()}, which does not fit the "
                    f"model's input {mine.describe()}; the signature is {self.describe()}"
                )

    def with_placeholders(
        self, graph: tf.Graph, defaults: Sequence[tf.Tensor]
    ) -> tuple[InputSignature, dict[FeatureKey, tf.Tensor]]:
        """One placeholder per feature in ``graph`` (``features/<key>``), holding the matching tensor of
        ``defaults`` unless fed; return the named signature and the tensors."""
        tensors = {}
        with graph.as_default(), tf.name_scope("features"):
            for feature, default in zip(self, defaults, strict=False):
                name = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(feature.key))
                tensors[feature.key] = tf.placeholder_with_default(default, feature.tensor_shape, name=name)
        named = InputSignature(Feature(f.key, f.dtype, f.shape, tensors[f.key].name) for f in self)
        return named, tensors

    def tensors(self, graph: tf.Graph) -> dict[FeatureKey, tf.Tensor]:
        return {f.key: graph.get_tensor_by_name(f.tensor) for f in self}

    def to_json(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self]

    @classmethod
    def from_json(cls, data: Sequence[Mapping[str, Any]]) -> InputSignature:
        return cls(Feature.from_json(item) for item in data)


def unbatched_features(signature: InputSignature, batched: InputSignature | None = None) -> list[str]:
    """The features whose shapes show a dataset of single elements, not batches (no ``.batch()``): a
    scalar (every feature of a batch has a leading dimension), or one dimension fewer than the same
    feature of ``batched`` (the other dataset). Empty when the shapes look batched."""
    found = []
    for feature in signature:
        other = batched[feature.key] if batched is not None and feature.key in batched else None
        if feature.shape == ():
            found.append(f"{feature.key!r}: {feature.dtype} () is one value, not a batch")
        elif other is not None and feature.shape is not None and other.shape is not None:
            if len(feature.shape) == len(other.shape) - 1 and other.shape[0] is None:
                found.append(
                    f"{feature.key!r}: {feature.dtype} {feature.shape_text()}, where the other data yields "
                    f"{other.shape_text()}"
                )
    return found


def batch_size(batch: Batch) -> int:
    """The number of examples in a batch: the leading dimension of its first non-scalar feature."""
    for value in batch.values():
        if np.ndim(value) > 0:
            return int(np.shape(value)[0])
    return 1


def keyed(element: Any) -> dict[FeatureKey, Any]:
    """A dataset element as ``{feature key: value}``: dicts by name, tuples by position, else key 0."""
    if isinstance(element, Mapping):
        return dict(element)
    if isinstance(element, tuple):
        return dict(enumerate(element))
    return {0: element}


class InputData:
    """An input function's dataset, built in a graph of its own.

    The arrays a ``Dataset.from_tensor_slices`` captures become constants of this graph,
    never of the model graph. The model reads the dataset either in-graph, from a
    serialized copy (``serialized``; see ``streams.py``), or as numpy batches
    (``reader``) when it cannot be serialized.
    """

    def __init__(self, input_fn: InputFn, role: str):
        if not callable(input_fn):
            raise InvalidTypeError(
                f"the {role} input function must be a callable taking no argument and returning "
                f"a tf.data.Dataset, got {type(input_fn).__name__}"
            )
        self.role, self.input_fn = role, input_fn
        self.graph = tf.Graph()
        with self.graph.as_default():
            dataset = input_fn()
            if not isinstance(dataset, DatasetBase):
                raise InvalidTypeError(
                    f"the {role} input function must return a tf.data.Dataset, got {type(dataset).__name__}"
                )
            self.signature = InputSignature.from_element_spec(dataset.element_spec, role)
        self.dataset = dataset  # also what the run's dataset digest reads (datasets.describe)

    def serialized(self, model: InputSignature) -> bytes | None:
        """The dataset as a serialized GraphDef whose elements are the model's features in
        ``model.element_order()``, those it lacks filled with empty values (the pipeline is left
        as it is when it yields them all); None when it cannot be serialized (e.g. it reads a variable)."""
        order = model.element_order()

        def padded(*element):
            values = keyed(element if len(element) > 1 else element[0])
            return tuple(values[key] if key in values else _empty(model[key]) for key in order)

        with self.graph.as_default():
            try:
                dataset = self.dataset if set(self.signature.keys()) == set(order) else self.dataset.map(padded)
                serialize = dataset._as_serialized_graph(external_state_policy=_KEEP_STATEFUL_OPS)
            except (ValueError, TypeError, tf.errors.OpError):
                return None
        session = new_session(self.graph, config=NO_GPU)
        try:
            return session.run(serialize)
        except tf.errors.OpError:
            return None
        finally:
            session.close()

    def reader(self) -> BatchReader:
        return BatchReader(self)


class BatchReader:
    """An input function's dataset read one numpy batch at a time in a session of its own
    (for datasets that cannot be serialized, models saved before in-graph input, and a
    second prediction while another one's generator is still open).

    tf.data reads ahead on its own threads (it prefetches at the end of a pipeline by
    default), so reading overlaps the model's step. The session sees no GPU, so it never
    competes with the model for device memory. Its thread counts stay at the defaults:
    TensorFlow's thread pools are process-wide and sized by the first session, so a
    one-thread data session would throttle the model.
    """

    def __init__(self, data: InputData):
        with data.graph.as_default():
            self._iterator = tf.data.make_initializable_iterator(data.dataset)
            self._next = self._iterator.get_next()
        self._session = new_session(data.graph, config=NO_GPU)

    def restart(self) -> None:
        self._session.run(self._iterator.initializer)

    def next_batch(self) -> Batch | None:
        """The next batch, or None at the end of the data."""
        try:
            return keyed(self._session.run(self._next))
        except tf.errors.OutOfRangeError:
            return None

    def close(self) -> None:
        self._session.close()


def _empty(feature: Feature) -> tf.Tensor:
    """A value of ``feature``'s dtype and rank with no examples, for a feature the data lacks."""
    dims = [] if feature.shape is None else [0 if d is None else d for d in feature.shape]
    return tf.zeros(dims, tf.as_dtype(feature.dtype))


def one_off_batch(
    signature: InputSignature, needed: Sequence[FeatureKey], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> Batch:
    """Turn ``predict(x)`` / ``predict(images=x)`` arguments into a checked batch.

    Positional values fill the features the outputs need, in signature order; keywords
    name features. Every needed feature must be given; values are checked against the
    signature's dtype and shape.
    """
    if len(args) > len(needed):
        raise InvalidValueError(
            f"predict got {len(args)} positional inputs but the outputs need "
            f"{len(needed)} ({', '.join(map(repr, needed))}); the signature is {signature.describe()}"
        )
    given: dict[FeatureKey, Any] = dict(zip(needed, args, strict=False))
    for key, value in kwargs.items():
        if key not in signature:
            raise InvalidValueError(
                f"predict got feature {key!r}, which the input signature lacks; the signature is {signature.describe()}"
            )
        if key in given:
            raise InvalidValueError(f"predict got feature {key!r} twice (positionally and by name)")
        given[key] = value
    missing = [key for key in needed if key not in given]
    if missing:
        raise InvalidValueError(
            f"predict needs feature(s) {', '.join(map(repr, missing))} for the outputs; "
            f"the signature is {signature.describe()}"
        )
    return {key: _checked_value(signature[key], value) for key, value in given.items()}


def _checked_value(feature: Feature, value: Any) -> np.ndarray:
    target, dims = _expected(feature)
    try:
        if target is None:  # strings
            array = np.asarray(value, dtype=object)
        else:
            array = value if isinstance(value, np.ndarray) else np.asarray(value)
    except ValueError as error:  # ragged nested lists
        raise InvalidValueError(
            f"feature {feature.key!r} expects shape {feature.shape_text()}, got values that are "
            f"not a rectangular array (rows of different lengths?): {error}"
        ) from None
    if target is not None and array.dtype != target:
        if not np.can_cast(array.dtype, target, casting="same_kind"):
            raise InvalidValueError(
                f"feature {feature.key!r} expects {feature.dtype}, got values of dtype {array.dtype}"
            )
        array = array.astype(target)
    if dims is not None and (
        array.ndim != len(dims) or any(d is not None and d != size for d, size in zip(dims, array.shape, strict=False))
    ):
        hint = " (add the batch dimension, e.g. x[None] or x[:1])" if array.ndim == len(dims) - 1 else ""
        raise InvalidValueError(
            f"feature {feature.key!r} expects shape {feature.shape_text()}, got {tuple(array.shape)}{hint}"
        )
    return array


@functools.cache
def _expected(feature: Feature) -> tuple[np.dtype | None, tuple[int | None, ...] | None]:
    """The numpy dtype (None for strings) and dimensions a one-off value must have (worked out once)."""
    dtype = tf.as_dtype(feature.dtype)
    return (None if dtype == tf.string else np.dtype(dtype.as_numpy_dtype)), feature.shape
