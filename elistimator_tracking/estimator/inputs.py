"""tf.estimator input functions as Elistimator input functions.

An estimator ``input_fn`` returns a ``Dataset`` of ``(features, labels)`` or of features
alone, or a ``(features, labels)`` pair of tensors (the ``make_one_shot_iterator().get_next()``
style); features and labels are a tensor or a dict of tensors. The Elistimator reads flat
dicts, so each element is flattened by a ``Layout``: feature dict keys stay as they are, a
single features tensor is ``'feature'``, a labels tensor ``'label'`` and label dict keys
``'label:<key>'`` (tf.estimator's own default names). ``model_fn`` gets the original
structure back (``Layout.unflatten``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._tf import DatasetBase, TensorSpec, new_session, tf
from ..errors import InvalidTypeError, InvalidValueError

FEATURE, LABEL = "feature", "label"
Keys = tuple[str, ...] | None  # dict keys; None: a single tensor


def call_with(fn: Callable, what: str, available: Mapping[str, Any], required: tuple[str, ...] = ()) -> Any:
    """Call ``fn`` with the arguments it names among ``available`` (tf.estimator passed
    ``features, labels, mode, params, config`` and ``mode, params, config`` by name)."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        raise InvalidTypeError(f"{what} must be a function, got {type(fn).__name__}") from None
    names = [n for n, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [n for n in names if n not in available and parameters[n].default is inspect.Parameter.empty]
    if unknown:
        raise InvalidValueError(
            f"{what} takes argument(s) {unknown} it cannot be given; it may take {', '.join(available)} (by name)"
        )
    missing = [n for n in required if n not in names]
    if missing:
        raise InvalidValueError(f"{what} must take {', '.join(required)} (it takes {names})")
    return fn(**{n: available[n] for n in names if n in available})


@dataclass(frozen=True)
class Layout:
    """How ``(features, labels)`` are flattened: dict keys, or None for a single tensor (``labels``:
    ``()`` when there are none)."""

    features: Keys
    labels: Keys = ()

    def label_keys(self) -> tuple[str, ...]:
        if self.labels is None:
            return (LABEL,)
        return tuple(f"{LABEL}:{key}" for key in self.labels)

    def flatten(self, features: Any, labels: Any = None) -> dict[str, Any]:
        flat = dict(features) if self.features is not None else {FEATURE: features}
        if self.labels is None:
            flat[LABEL] = labels
        elif self.labels:
            flat.update({f"{LABEL}:{key}": value for key, value in labels.items()})
        return flat

    def unflatten(self, flat: Mapping[str, Any]) -> tuple[Any, Any]:
        """``(features, labels)`` from the flat dict (labels None when the data has none)."""
        features = {key: flat[key] for key in self.features} if self.features is not None else flat[FEATURE]
        if self.labels is None:
            return features, flat.get(LABEL)
        if not self.labels:
            return features, None
        return features, {key: flat[f"{LABEL}:{key}"] for key in self.labels}

    def to_json(self) -> dict[str, Any]:
        return {
            "features": None if self.features is None else list(self.features),
            "labels": None if self.labels is None else list(self.labels),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Layout:
        features, labels = data["features"], data["labels"]
        return cls(None if features is None else tuple(features), None if labels is None else tuple(labels))


def _keys(spec: Any, what: str) -> Keys:
    if isinstance(spec, TensorSpec):
        return None
    if isinstance(spec, Mapping) and all(isinstance(v, TensorSpec) for v in spec.values()):
        bad = [k for k in spec if not isinstance(k, str) or not k]
        if bad:
            raise InvalidTypeError(f"the input_fn's {what} dict has non-string keys {bad}; use string keys")
        return tuple(spec)
    raise InvalidTypeError(
        f"the input_fn's {what} must be a dense tensor or a flat dict of dense tensors, got {spec!r}"
    )


def layout_of(element_spec: Any) -> Layout:
    """The layout of a dataset element: ``(features, labels)`` when it is a pair, else features alone."""
    if isinstance(element_spec, tuple):
        if len(element_spec) != 2:
            raise InvalidTypeError(
                f"the input_fn's dataset yields a tuple of {len(element_spec)}; tf.estimator expects "
                "(features, labels) or features alone"
            )
        layout = Layout(_keys(element_spec[0], "features"), _keys(element_spec[1], "labels"))
    else:
        layout = Layout(_keys(element_spec, "features"))
    clash = [k for k in layout.features or () if k == LABEL or k.startswith(LABEL + ":")]
    if clash:
        raise InvalidValueError(f"feature key(s) {clash} clash with the names labels are read under; rename them")
    return layout


def as_dataset(result: Any) -> DatasetBase:
    """What an estimator ``input_fn`` returned, as a Dataset."""
    if isinstance(result, DatasetBase):
        return result
    if isinstance(result, tuple) and len(result) == 2 and _tensors(result):
        return _generated(result)
    if isinstance(result, (tf.Tensor, Mapping)) and _tensors(result):
        return _generated(result)
    raise InvalidTypeError(
        f"input_fn must return a tf.data.Dataset of (features, labels) or of features, or a "
        f"(features, labels) tuple of tensors; got {type(result).__name__}"
    )


def _tensors(structure: Any) -> bool:
    return all(isinstance(t, tf.Tensor) for t in tf.nest.flatten(structure))


def _generated(structure: Any) -> DatasetBase:
    """A Dataset of the values of tensors an input_fn built (e.g. an iterator's ``get_next()``): each
    pass evaluates them in a session of their own graph until they run out."""
    graph = tf.get_default_graph()
    signature = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), structure)

    def generate():
        session = new_session(graph)
        try:
            while True:
                try:
                    yield session.run(structure)
                except tf.errors.OutOfRangeError:
                    return
        finally:
            session.close()

    return tf.data.Dataset.from_generator(generate, output_signature=signature)


def flat_input_fn(
    input_fn: Callable,
    mode: str,
    params: Mapping[str, Any],
    config: Any,
    drop_labels: bool = False,
    found: Callable[[Layout], None] | None = None,
    dtypes: Callable[[], Mapping[str, str]] | None = None,
) -> Callable[[], DatasetBase]:
    """An Elistimator input function over the estimator ``input_fn``: flat dicts (``found`` is told the
    layout), labels dropped for prediction, and values converted to the ``dtypes()`` the model was built
    for where no value can change (float32 data for a model trained on float64: tf.estimator built a new
    graph for the data it got; this one graph takes its own dtypes)."""
    if not callable(input_fn):
        raise InvalidTypeError(
            f"input_fn must be a function returning a tf.data.Dataset, got {type(input_fn).__name__}"
        )

    def flat() -> DatasetBase:
        dataset = as_dataset(call_with(input_fn, "input_fn", {"mode": mode, "params": params, "config": config}))
        layout = layout_of(dataset.element_spec)
        if drop_labels:
            layout = Layout(layout.features)
        if found is not None:
            found(layout)
        dataset = dataset.map(lambda *element: layout.flatten(*element[: 2 if layout.labels != () else 1]))
        return converted(dataset, dtypes() if dtypes is not None else {}, mode)

    return flat


def converted(dataset: DatasetBase, dtypes: Mapping[str, str], mode: str) -> DatasetBase:
    """``dataset`` (of flat dicts) with its values cast to ``dtypes`` where the cast is exact; a cast that
    could change values (float to int, float64 to float32, int64 to float) is refused, naming the key."""
    changes = {}
    for key, spec in dataset.element_spec.items():
        wanted = dtypes.get(key)
        if wanted is None or spec.dtype.name == wanted:
            continue
        if not _exact_cast(spec.dtype.name, wanted):
            raise InvalidTypeError(
                f"the {mode} input_fn yields {key!r} as {spec.dtype.name}, but the model was built for "
                f"{wanted}: converting it could change its values; give it as {wanted}"
            )
        changes[key] = tf.as_dtype(wanted)
    if not changes:
        return dataset
    return dataset.map(lambda flat: {k: tf.cast(v, changes[k]) if k in changes else v for k, v in flat.items()})


def _exact_cast(source: str, target: str) -> bool:
    """Whether every ``source`` value is exactly a ``target`` value (numpy's safe casting, except int64 to
    float64, which numpy allows but rounds above 2**53)."""
    try:
        source_type, target_type = np.dtype(source), np.dtype(target)
    except TypeError:
        return False
    if source_type.kind in "iu" and target_type.kind == "f" and source_type.itemsize >= 8:
        return False
    return bool(np.can_cast(source_type, target_type, casting="safe"))


def placeholder_input_fn(signature: Mapping[str, tuple[str, tuple | None]]) -> Callable[[], DatasetBase]:
    """An input function of no data with a recorded flat signature ``{key: (dtype, shape)}``: builds
    the graph of a trained model before its own data is at hand (``predict`` first)."""

    def empty() -> DatasetBase:
        spec = {
            key: tf.TensorSpec(None if shape is None else list(shape), tf.as_dtype(dtype))
            for key, (dtype, shape) in signature.items()
        }
        return tf.data.Dataset.from_generator(lambda: iter(()), output_signature=spec)

    return empty


def matching(layout: Layout, trained: Layout, role: str) -> None:
    """Raise unless data of ``layout`` can feed a model trained on ``trained``."""
    if layout.features != trained.features:
        raise InvalidValueError(
            f"the {role} input_fn yields features {_describe(layout.features)}, but the model was "
            f"built for features {_describe(trained.features)}"
        )
    if layout.labels != () and layout.labels != trained.labels:
        raise InvalidValueError(
            f"the {role} input_fn yields labels {_describe(layout.labels)}, but the model was "
            f"built for labels {_describe(trained.labels)}"
        )


def _describe(keys: Keys | tuple) -> str:
    return "as a single tensor" if keys is None else f"as a dict with keys {list(keys)}"


def numpy_input_fn(
    x: Any,
    y: Any = None,
    batch_size: int = 128,
    num_epochs: int | None = 1,
    shuffle: bool | None = None,
    queue_capacity: int = 1000,
    num_threads: int = 1,
) -> Callable[[], DatasetBase]:
    """``tf.estimator.inputs.numpy_input_fn``: batches of ``(x, y)`` (dicts or arrays of numpy arrays) for
    ``num_epochs`` passes (None: endless), shuffled within ``queue_capacity`` examples when ``shuffle``.
    A Dataset where tf.estimator used queue runners; ``num_threads`` is not needed."""
    if not isinstance(shuffle, bool):
        raise InvalidValueError(f"shuffle must be provided explicitly as True or False, got {shuffle!r}")
    if num_epochs is not None and (not isinstance(num_epochs, int) or num_epochs < 1):
        raise InvalidValueError(f"num_epochs must be a positive int or None, got {num_epochs!r}")

    def input_fn() -> DatasetBase:
        dataset = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y))
        if shuffle:
            dataset = dataset.shuffle(queue_capacity)
        return dataset.repeat(num_epochs).batch(batch_size)

    return input_fn
