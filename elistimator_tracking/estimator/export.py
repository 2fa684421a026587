"""``tf.estimator.export``: serving input receivers, export outputs, and writing a SavedModel.

As tf.estimator did: ``model_fn`` is called in PREDICT mode on the receiver's features in
a graph of its own, the checkpoint is restored into it, and the graph is saved with one
signature per ``export_outputs`` entry (``serving_default`` among them) under the tag
``serve``, in a timestamped directory that appears only once complete.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from tensorflow.python.saved_model.model_utils import export_output as _outputs
from tensorflow.python.saved_model.model_utils import export_utils

from .._tf import new_session, tf
from ..errors import InvalidTypeError, InvalidValueError
from .spec import ModeKeys

ExportOutput = _outputs.ExportOutput
PredictOutput = _outputs.PredictOutput
ClassificationOutput = _outputs.ClassificationOutput
RegressionOutput = _outputs.RegressionOutput
SINGLE_FEATURE = export_utils.SINGLE_FEATURE_DEFAULT_NAME  # 'feature'
SINGLE_RECEIVER = export_utils.SINGLE_RECEIVER_DEFAULT_NAME  # 'input'


def _tensor_dict(value: Any, single_name: str, what: str) -> dict:
    if isinstance(value, (tf.Tensor, tf.SparseTensor)):
        return {single_name: value}
    if not isinstance(value, Mapping) or not value:
        raise InvalidTypeError(
            f"ServingInputReceiver: {what} must be a tensor or a non-empty dict of tensors, got {value!r}"
        )
    for key, tensor in value.items():
        if not isinstance(key, str) or not isinstance(tensor, (tf.Tensor, tf.SparseTensor)):
            raise InvalidTypeError(
                f"ServingInputReceiver: {what}[{key!r}] must be a tensor under a string key, "
                f"got {type(tensor).__name__}"
            )
    return dict(value)


class ServingInputReceiver:
    """The serving graph's inputs: ``features`` for ``model_fn``, ``receiver_tensors`` the SavedModel's
    signature inputs (a single tensor is named ``'feature'`` / ``'input'``)."""

    def __init__(self, features: Any, receiver_tensors: Any, receiver_tensors_alternatives: Mapping | None = None):
        self.features = _tensor_dict(features, SINGLE_FEATURE, "features")
        self.receiver_tensors = _tensor_dict(receiver_tensors, SINGLE_RECEIVER, "receiver_tensors")
        self.receiver_tensors_alternatives = {
            name: _tensor_dict(tensors, SINGLE_RECEIVER, f"receiver_tensors_alternatives[{name!r}]")
            for name, tensors in (receiver_tensors_alternatives or {}).items()
        }


class TensorServingInputReceiver(ServingInputReceiver):
    """A receiver whose ``features`` reach ``model_fn`` as one tensor, not a dict."""

    def __init__(self, features: Any, receiver_tensors: Any, receiver_tensors_alternatives: Mapping | None = None):
        if not isinstance(features, tf.Tensor):
            raise InvalidTypeError(
                f"TensorServingInputReceiver: features must be one tensor, got {type(features).__name__}"
            )
        super().__init__(features, receiver_tensors, receiver_tensors_alternatives)
        self.single_feature = features


def build_raw_serving_input_receiver_fn(
    features: Any, default_batch_size: int | None = None
) -> Callable[[], ServingInputReceiver]:
    """A receiver fn with one placeholder per feature (its dtype and shape, batch size ``default_batch_size``)."""
    single = isinstance(features, tf.Tensor)
    specs = {SINGLE_FEATURE: features} if single else dict(features)

    def serving_input_receiver_fn() -> ServingInputReceiver:
        placeholders = {}
        for name, tensor in specs.items():
            shape = tensor.shape.as_list() if tensor.shape.rank is not None else None
            if shape:
                shape[0] = default_batch_size
            placeholders[name] = tf.placeholder(tensor.dtype, shape, name=tensor.op.name.split("/")[-1])
        if single:
            return TensorServingInputReceiver(placeholders[SINGLE_FEATURE], placeholders)
        return ServingInputReceiver(placeholders, dict(placeholders))

    return serving_input_receiver_fn


def build_parsing_serving_input_receiver_fn(
    feature_spec: Mapping[str, Any], default_batch_size: int | None = None
) -> Callable[[], ServingInputReceiver]:
    """A receiver fn parsing serialized ``tf.Example`` protos (the input ``examples``) with ``feature_spec``."""

    def serving_input_receiver_fn() -> ServingInputReceiver:
        serialized = tf.placeholder(tf.string, [default_batch_size], name="input_example_tensor")
        return ServingInputReceiver(tf.parse_example(serialized, feature_spec), {"examples": serialized})

    return serving_input_receiver_fn


def write_saved_model(
    model: Any,
    params: Mapping[str, Any],
    checkpoint: str,
    export_dir_base: str,
    serving_input_receiver_fn: Callable[[], Any],
    as_text: bool = False,
    assets_extra: Mapping[str, str] | None = None,
    strip_default_attrs: bool = True,
) -> bytes:
    """Export ``checkpoint`` of ``model`` (an ``EstimatorModel``) as a SavedModel in a new timestamped
    directory under ``export_dir_base``; return its path (bytes, as tf.estimator did)."""
    if not callable(serving_input_receiver_fn):
        raise InvalidTypeError(
            "serving_input_receiver_fn must be a function returning a ServingInputReceiver, "
            f"got {type(serving_input_receiver_fn).__name__}"
        )
    graph = tf.Graph()
    with graph.as_default():
        tf.train.get_or_create_global_step()
        if model.config.tf_random_seed is not None:
            graph.seed = model.config.tf_random_seed
        receiver = serving_input_receiver_fn()
        if not isinstance(receiver, ServingInputReceiver):
            raise InvalidTypeError(
                f"serving_input_receiver_fn must return a ServingInputReceiver, got {type(receiver).__name__}"
            )
        features = getattr(receiver, "single_feature", receiver.features)
        spec = model.call(ModeKeys.PREDICT, features, None, params)
        if not spec.export_outputs:
            raise InvalidValueError(
                "export_saved_model needs export_outputs: the EstimatorSpec for PREDICT has an empty "
                "export_outputs dict (give PredictOutput/ClassificationOutput/RegressionOutput entries)"
            )
        signatures = export_utils.build_all_signature_defs(
            receiver.receiver_tensors,
            dict(spec.export_outputs),
            receiver.receiver_tensors_alternatives,
            serving_only=True,
        )
        saver = tf.train.Saver(sharded=True)
        local_init = tf.group(tf.local_variables_initializer(), tf.tables_initializer())
        session = new_session(graph)
        try:
            saver.restore(session, checkpoint)
            return _save(
                session, saver, signatures, local_init, export_dir_base, as_text, assets_extra, strip_default_attrs
            )
        finally:
            session.close()


def _save(
    session: tf.Session,
    saver: tf.train.Saver,
    signatures: Mapping,
    local_init: tf.Operation,
    export_dir_base: str,
    as_text: bool,
    assets_extra: Mapping[str, str] | None,
    strip_default_attrs: bool,
) -> bytes:
    """The SavedModel written to a temporary directory, then renamed into place."""
    export_dir = export_utils.get_timestamped_export_dir(os.fspath(export_dir_base))
    temporary = export_utils.get_temp_export_dir(export_dir)
    builder = tf.saved_model.Builder(temporary)
    builder.add_meta_graph_and_variables(
        session,
        [tf.saved_model.tag_constants.SERVING],
        signature_def_map=signatures,
        main_op=local_init,
        saver=saver,
        strip_default_attrs=strip_default_attrs,
    )
    builder.save(as_text)
    for destination, source in (assets_extra or {}).items():
        target = os.path.join(
            temporary.decode() if isinstance(temporary, bytes) else temporary, "assets.extra", destination
        )
        tf.io.gfile.makedirs(os.path.dirname(target))
        tf.io.gfile.copy(source, target, overwrite=True)
    tf.io.gfile.rename(temporary, export_dir)
    return export_dir
