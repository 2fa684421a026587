"""Spec fields and model_fn results of the wrong kind fail with a message naming them."""

import numpy as np
import pytest
from conftest import blobs, dataset_fn, tiny_model_fn

from elistimator_tracking import Elistimator, EvaluationSpec, PredictSpec, TrainSpec
from elistimator_tracking._tf import tf


def setup_with(tmp_path, model_fn):
    x, y = blobs(16)
    est = Elistimator(model_fn, tmp_path, verbose=False)
    try:
        est.setup(dataset_fn(x, y), dataset_fn(x, y))
    finally:
        est.close()


def specs_of(features, is_training, params):
    return tiny_model_fn(features, is_training, params)


@pytest.mark.parametrize(
    "returned, message",
    [
        (
            lambda s: s[:2],
            r"must return 3 values \(TrainSpec, EvaluationSpec or None, PredictSpec or None\), got 2 values",
        ),
        (lambda s: s[0], "must return 3 values .* got TrainSpec"),
        (lambda s: (None, s[1], s[2]), "value 0 should be TrainSpec, got NoneType"),
        (lambda s: (s[0], s[2], s[2]), "value 1 should be EvaluationSpec or None, got PredictSpec"),
        (lambda s: (s[0], s[1], {"classes": 1}), "value 2 should be PredictSpec or None, got dict"),
    ],
)
def test_model_fn_returning_the_wrong_thing(tmp_path, returned, message):
    def model_fn(features, is_training, params):
        return returned(specs_of(features, is_training, params))

    with pytest.raises(TypeError, match=message):
        setup_with(tmp_path, model_fn)


def test_spec_fields_of_the_wrong_type():
    graph = tf.Graph()
    with graph.as_default():
        loss = tf.constant(1.0)
        op = tf.no_op()
        vector = tf.constant([1.0, 2.0])
        with pytest.raises(TypeError, match=r"TrainSpec.loss must be a tf.Tensor, got float: 1.0"):
            TrainSpec(1.0, op)
        with pytest.raises(TypeError, match=r"TrainSpec.train_op must be a tf.Operation .* got str"):
            TrainSpec(loss, "minimize")
        with pytest.raises(ValueError, match=r"TrainSpec.loss must be a scalar tensor .* got shape \(2,\)"):
            TrainSpec(vector, op)
        with pytest.raises(
            TypeError,
            match=r"EvaluationSpec.eval_metric_ops\['acc'\] must be a \(value_tensor, "
            r"update_op\) pair",
        ):
            EvaluationSpec(loss, {"acc": loss})
        with pytest.raises(ValueError, match="must not contain 'loss'"):
            EvaluationSpec(loss, {"loss": (loss, op)})
        with pytest.raises(ValueError, match=r"eval_metric_ops\['v'\] value must be a scalar"):
            EvaluationSpec(loss, {"v": (vector, op)})
        with pytest.raises(TypeError, match="eval_metric_ops must be a dict"):
            EvaluationSpec(loss, [(loss, op)])
        with pytest.raises(TypeError, match=r"PredictSpec.output\['p'\] must be a tf.Tensor, got ndarray"):
            PredictSpec({"p": np.zeros(2)})
        with pytest.raises(TypeError, match="PredictSpec.output must be a tf.Tensor or a non-empty dict"):
            PredictSpec({})
        assert set(PredictSpec(vector).output) == {"output"}
        assert TrainSpec(loss, loss).train_op is loss.op


def test_spec_tensor_from_another_graph(tmp_path):
    other = tf.Graph()
    with other.as_default():
        foreign = tf.constant([1.0])

    def model_fn(features, is_training, params):
        train, evaluation, _ = tiny_model_fn(features, is_training, params)
        return train, evaluation, PredictSpec({"p": foreign})

    with pytest.raises(ValueError, match="PredictSpec holds 'Const:0', which belongs to another graph"):
        setup_with(tmp_path, model_fn)


def test_failed_model_fn_leaves_nothing_built(tmp_path):
    calls = []

    def flaky_model_fn(features, is_training, params):
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("labels")
        return tiny_model_fn(features, is_training, params)

    x, y = blobs(16)
    est = Elistimator(flaky_model_fn, tmp_path, verbose=False)
    with pytest.raises(KeyError):
        est.setup(dataset_fn(x, y))
    assert est.graph is None and est.session is None
    est.setup(dataset_fn(x, y)).train()  # a clean second build: no duplicate variables
    assert est.global_step == 2
    est.close()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"model_fn": "cnn"}, TypeError, "model_fn must be callable"),
        ({"params": [1]}, TypeError, "params must be a dict or None, got list"),
        ({"session_args": {"graph": None}}, TypeError, r"session_args has unknown key\(s\) \['graph'\]"),
        ({"session_args": "fast"}, TypeError, "session_args must be a dict"),
        ({"model_dir": 3}, TypeError, "model_dir must be a str or pathlib.Path, got int"),
        ({"summary_every_n_steps": 0}, ValueError, "summary_every_n_steps must be a positive int"),
    ],
)
def test_constructor_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        Elistimator(**{"model_fn": tiny_model_fn, **kwargs})


@pytest.mark.parametrize(
    "input_fn, message",
    [
        (lambda: np.zeros(3), "training input function must return a tf.data.Dataset, got ndarray"),
        ("data", "training input function must be a callable"),
        (
            lambda: tf.data.Dataset.from_tensor_slices({"x": {"nested": np.zeros((2, 2), np.float32)}}),
            "yields dict for feature 'x'; only a dense tensor, a flat tuple or a flat dict",
        ),
    ],
)
def test_bad_input_functions(tmp_path, input_fn, message):
    est = Elistimator(tiny_model_fn, tmp_path, verbose=False)
    with pytest.raises(TypeError, match=message):
        est.setup(input_fn)
    est.close()
