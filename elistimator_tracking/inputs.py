"""Input functions, the input signature, and one-off feeding.

Every input function runs in a small graph and session of its own (a ``BatchStream``)
and hands numpy batches to the model graph, whose features are placeholders. Two
things follow: the data a ``Dataset.from_tensor_slices`` captures as constants never
enters the model graph (so no checkpoint, meta graph or event file carries it), and
calling ``evaluate``/``predict`` with fresh input functions never adds ops to the
model graph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ._tf import DatasetBase, TensorSpec, new_session, tf

FeatureKey = Union[str, int]
Batch = Dict[FeatureKey, np.ndarray]
InputFn = Callable[[], Any]


@dataclass(frozen=True)
class Feature:
    """One input of the model: its key in ``features``, dtype, shape (None = any) and placeholder name."""

    key: FeatureKey
    dtype: str
    shape: Optional[Tuple[Optional[int], ...]]
    tensor: str = ""

    def shape_text(self) -> str:
        if self.shape is None:
            return "(any shape)"
        return "(" + ", ".join("?" if d is None else str(d) for d in self.shape) + ")"

    def describe(self) -> str:
        return f"{self.key!r}: {self.dtype} {self.shape_text()}"

    def accepts(self, other: "Feature") -> bool:
        return self.dtype == other.dtype and _shape(self.shape).is_compatible_with(_shape(other.shape))

    def to_json(self) -> Dict[str, Any]:
        return {"key": self.key, "dtype": self.dtype,
                "shape": None if self.shape is None else list(self.shape), "tensor": self.tensor}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Feature":
        shape = data["shape"]
        return cls(key=data["key"], dtype=data["dtype"],
                   shape=None if shape is None else tuple(shape), tensor=data.get("tensor", ""))


def _shape(dims: Optional[Sequence[Optional[int]]]) -> tf.TensorShape:
    return tf.TensorShape(None if dims is None else list(dims))


def _dims(shape: tf.TensorShape) -> Optional[Tuple[Optional[int], ...]]:
    return None if shape.rank is None else tuple(shape.as_list())


def _relaxed(a: Feature, b: Feature) -> Feature:
    """The most specific shape both features fit (dimensions that differ become None)."""
    if a.shape is None or b.shape is None or len(a.shape) != len(b.shape):
        return Feature(a.key, a.dtype, None)
    return Feature(a.key, a.dtype, tuple(x if x == y else None for x, y in zip(a.shape, b.shape)))


class InputSignature:
    """The ordered features a dataset yields: names (or tuple positions), dtypes and shapes."""

    def __init__(self, features: Iterable[Feature]):
        self.features: Dict[FeatureKey, Feature] = {f.key: f for f in features}

    def __iter__(self):
        return iter(self.features.values())

    def __contains__(self, key: Any) -> bool:
        return key in self.features

    def __getitem__(self, key: FeatureKey) -> Feature:
        return self.features[key]

    def keys(self) -> List[FeatureKey]:
        return list(self.features)

    def describe(self) -> str:
        return "{" + ", ".join(f.describe() for f in self) + "}"

    @classmethod
    def from_element_spec(cls, element_spec: Any, role: str) -> "InputSignature":
        if isinstance(element_spec, Mapping):
            items = list(element_spec.items())
            for key, _ in items:
                if not isinstance(key, str):
                    raise TypeError(f"the {role} dataset yields a dict with a non-string key {key!r}; "
                                    "use string keys")
        elif isinstance(element_spec, tuple):
            items = list(enumerate(element_spec))
        else:
            items = [(0, element_spec)]
        features = []
        for key, spec in items:
            if not isinstance(spec, TensorSpec):
                raise TypeError(f"the {role} dataset yields {type(spec).__name__} for feature {key!r}; "
                                "only a dense tensor, a flat tuple or a flat dict of dense tensors is supported")
            features.append(Feature(key, spec.dtype.name, _dims(spec.shape)))
        return cls(features)

    def relaxed_with(self, other: "InputSignature", role: str) -> "InputSignature":
        """This signature widened so that ``other`` (e.g. the validation data) fits it as well."""
        self.require_fits(other, role, relax=True)
        return InputSignature(_relaxed(f, other[f.key]) if f.key in other else f for f in self)

    def require_fits(self, other: "InputSignature", role: str, relax: bool = False) -> None:
        """Raise if a dataset with signature ``other`` cannot feed a model with this signature."""
        for feature in other:
            if feature.key not in self:
                raise ValueError(f"the {role} dataset yields feature {feature.key!r}, which the model's input "
                                 f"signature lacks; the signature is {self.describe()}")
            mine = self[feature.key]
            fits = mine.dtype == feature.dtype if relax else mine.accepts(feature)
            if not fits:
                raise ValueError(f"the {role} dataset yields {feature.describe()}, which does not fit the "
                                 f"model's input {mine.describe()}; the signature is {self.describe()}")

    def with_placeholders(self, graph: tf.Graph) -> Tuple["InputSignature", Dict[FeatureKey, tf.Tensor]]:
        """Create one placeholder per feature in ``graph``; return the named signature and the tensors."""
        tensors = {}
        with graph.as_default(), tf.name_scope("features"):
            for feature in self:
                name = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(feature.key))
                tensors[feature.key] = tf.placeholder(tf.as_dtype(feature.dtype), _shape(feature.shape), name=name)
        named = InputSignature(Feature(f.key, f.dtype, f.shape, tensors[f.key].name) for f in self)
        return named, tensors

    def tensors(self, graph: tf.Graph) -> Dict[FeatureKey, tf.Tensor]:
        return {f.key: graph.get_tensor_by_name(f.tensor) for f in self}

    def to_json(self) -> List[Dict[str, Any]]:
        return [f.to_json() for f in self]

    @classmethod
    def from_json(cls, data: Sequence[Mapping[str, Any]]) -> "InputSignature":
        return cls(Feature.from_json(item) for item in data)


def batch_size(batch: Batch) -> int:
    """The number of examples in a batch: the leading dimension of its first non-scalar feature."""
    for value in batch.values():
        if np.ndim(value) > 0:
            return int(np.shape(value)[0])
    return 1


class BatchStream:
    """An input function's dataset in a graph and session of its own, read one numpy batch at a time.

    ``next_batch()`` returns None at the end of an epoch; ``restart()`` begins the next one.
    The session sees no GPU, so it never competes with the model for device memory. Its
    thread counts stay at the defaults: TensorFlow's thread pools are process-wide and
    sized by the first session, so a one-thread data session would throttle the model.
    """

    def __init__(self, input_fn: InputFn, role: str):
        if not callable(input_fn):
            raise TypeError(f"the {role} input function must be a callable taking no argument and returning "
                            f"a tf.data.Dataset, got {type(input_fn).__name__}")
        self.role = role
        self._graph = tf.Graph()
        with self._graph.as_default():
            dataset = input_fn()
            if not isinstance(dataset, DatasetBase):
                raise TypeError(f"the {role} input function must return a tf.data.Dataset, "
                                f"got {type(dataset).__name__}")
            self.signature = InputSignature.from_element_spec(dataset.element_spec, role)
            self.dataset = dataset  # what the run's dataset digest reads (datasets.describe)
            self._iterator = tf.data.make_initializable_iterator(dataset)
            self._next = self._iterator.get_next()
        self._session = new_session(self._graph, config=tf.ConfigProto(device_count={"GPU": 0}))

    def restart(self) -> None:
        self._session.run(self._iterator.initializer)

    def next_batch(self) -> Optional[Batch]:
        try:
            values = self._session.run(self._next)
        except tf.errors.OutOfRangeError:
            return None
        if isinstance(values, Mapping):
            return dict(values)
        if isinstance(values, tuple):
            return dict(enumerate(values))
        return {0: values}

    def epoch(self) -> Iterable[Batch]:
        """Every batch of one fresh pass over the data."""
        self.restart()
        while (batch := self.next_batch()) is not None:
            yield batch

    def close(self) -> None:
        self._session.close()


def one_off_batch(signature: InputSignature, needed: Sequence[FeatureKey],
                  args: Sequence[Any], kwargs: Mapping[str, Any]) -> Batch:
    """Turn ``predict(x)`` / ``predict(images=x)`` arguments into a checked batch.

    Positional values fill the features the outputs need, in signature order; keywords
    name features. Every needed feature must be given; values are checked against the
    signature's dtype and shape.
    """
    if len(args) > len(needed):
        raise ValueError(f"predict got {len(args)} positional inputs but the outputs need "
                         f"{len(needed)} ({', '.join(map(repr, needed))}); the signature is {signature.describe()}")
    given: Dict[FeatureKey, Any] = dict(zip(needed, args))
    for key, value in kwargs.items():
        if key not in signature:
            raise ValueError(f"predict got feature {key!r}, which the input signature lacks; "
                             f"the signature is {signature.describe()}")
        if key in given:
            raise ValueError(f"predict got feature {key!r} twice (positionally and by name)")
        given[key] = value
    missing = [key for key in needed if key not in given]
    if missing:
        raise ValueError(f"predict needs feature(s) {', '.join(map(repr, missing))} for the outputs; "
                         f"the signature is {signature.describe()}")
    return {key: _checked_value(signature[key], value) for key, value in given.items()}


def _checked_value(feature: Feature, value: Any) -> np.ndarray:
    dtype = tf.as_dtype(feature.dtype)
    try:
        array = np.asarray(value, dtype=object) if dtype == tf.string else np.asarray(value)
    except ValueError as error:  # ragged nested lists
        raise ValueError(f"feature {feature.key!r} expects shape {feature.shape_text()}, got values that are "
                         f"not a rectangular array (rows of different lengths?): {error}") from None
    if dtype != tf.string:
        target = np.dtype(dtype.as_numpy_dtype)
        if not np.can_cast(array.dtype, target, casting="same_kind"):
            raise ValueError(f"feature {feature.key!r} expects {feature.dtype}, got values of dtype {array.dtype}")
        array = array.astype(target, copy=False)
    if not _shape(feature.shape).is_compatible_with(array.shape):
        hint = " (add the batch dimension, e.g. x[None] or x[:1])" if (
            feature.shape is not None and array.ndim == len(feature.shape) - 1) else ""
        raise ValueError(f"feature {feature.key!r} expects shape {feature.shape_text()}, "
                         f"got {tuple(array.shape)}{hint}")
    return array
