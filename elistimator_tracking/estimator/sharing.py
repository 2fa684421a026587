"""How one graph holds a ``model_fn`` called in three modes, each as if in a graph of its own.

tf.estimator called ``model_fn`` in a new graph per mode, so a model's layers were named
``dense``, ``dense_1``, ... in every mode, and Keras layer objects made inside ``model_fn``
made their variables anew each time. Here the EVAL and PREDICT calls follow the TRAIN call
in the same graph: ``NameCounters`` starts every call with the same layer and scope names
(so ``tf.get_variable`` / ``tf.compat.v1.layers`` share by name under ``tf.AUTO_REUSE``),
and ``SharedVariables`` hands the EVAL and PREDICT calls the variables the TRAIN call made
when they make the same ones again outside ``tf.get_variable`` (Keras layers, ``tf.Variable``).
"""

from __future__ import annotations

from typing import Any

from tensorflow.python.ops import variable_scope

from .._tf import tf

_LOCAL = (tf.GraphKeys.LOCAL_VARIABLES, tf.GraphKeys.METRIC_VARIABLES)


class SharedVariables:
    """The variables the TRAIN call made, in order; later calls making a variable of the same name,
    shape and dtype get the next such one instead (metric and other local variables are their own)."""

    def __init__(self) -> None:
        self._made: list[tuple[tuple, Any]] = []
        self._next = 0

    def recording(self):
        return tf.variable_creator_scope(self._record)

    def sharing(self):
        self._next = 0
        return tf.variable_creator_scope(self._share)

    def _record(self, next_creator, **kwargs):
        variable = next_creator(**kwargs)
        if not _local(kwargs):
            self._made.append((_key(kwargs), variable))
        return variable

    def _share(self, next_creator, **kwargs):
        if not _local(kwargs):
            key = _key(kwargs)
            for position in range(self._next, len(self._made)):
                if self._made[position][0] == key:
                    self._next = position + 1
                    return self._made[position][1]
        return next_creator(**kwargs)


def _key(kwargs: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """A variable's name within its scope, shape and dtype, as asked for."""
    shape, dtype = kwargs.get("shape"), kwargs.get("dtype")
    return (
        (kwargs.get("name") or "").split("/")[-1],
        None if shape is None else str(tf.TensorShape(shape)),
        None if dtype is None else tf.as_dtype(dtype).base_dtype.name,
    )


def _local(kwargs: dict[str, Any]) -> bool:
    return any(key in (kwargs.get("collections") or ()) for key in _LOCAL)


class NameCounters:
    """The counters that make layer and scope names unique in the default graph (variable scopes', and
    Keras' for ``tf.compat.v1.layers``), taken when made and put back by ``rewind``."""

    def __init__(self) -> None:
        self._store = variable_scope.get_variable_scope_store()
        self._layers = _layer_name_counts()
        self._saved = (dict(self._store.variable_scopes_count), dict(self._layers or {}))

    def rewind(self) -> None:
        self._store.variable_scopes_count = dict(self._saved[0])  # the store replaces this dict: set it anew
        if self._layers is not None:
            self._layers.clear()
            self._layers.update(self._saved[1])


def _layer_name_counts() -> dict[str, int] | None:
    """The default graph's layer name counters of tf-keras (which ``tf.compat.v1.layers`` uses), if installed."""
    try:
        from tf_keras.src import backend
    except ImportError:
        return None
    return backend.get_default_graph_uid_map()
