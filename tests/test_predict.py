"""predict(): batches from an input function, one-off arrays, and a graph that never grows."""

import numpy as np
import pytest
from conftest import dataset_fn

from elistimator_tracking import Elistimator, PredictSpec, TrainSpec
from elistimator_tracking._tf import tf


def test_predict_with_input_fn_yields_one_dict_per_batch(estimator, data):
    _, (vx, vy) = data
    batches = list(estimator.predict(input_fn=dataset_fn(vx, vy)))
    assert [len(b["classes"]) for b in batches] == [8, 8, 8, 6]
    assert all(set(b) == {"classes", "probabilities"} for b in batches)
    assert batches[0]["probabilities"].shape == (8, 2)


def test_one_off_forms_agree_with_batches(estimator, data):
    _, (vx, vy) = data
    estimator.train()
    by_name = estimator.predict(x=vx[:8])
    positional = estimator.predict(vx[:8])
    batch = next(iter(estimator.predict(input_fn=dataset_fn(vx, vy))))
    for key in ("classes", "probabilities"):
        np.testing.assert_array_equal(by_name[key], positional[key])
        np.testing.assert_allclose(by_name[key], batch[key], rtol=1e-6)
    assert estimator.predict(x=vx[:1])["classes"].shape == (1,)


def test_one_off_converts_compatible_dtypes(estimator, data):
    _, (vx, _) = data
    np.testing.assert_allclose(
        estimator.predict(vx[:2].astype(np.float64))["probabilities"],
        estimator.predict(vx[:2])["probabilities"],
        rtol=1e-6,
    )
    np.testing.assert_array_equal(
        estimator.predict([[0, 1], [2, 3]])["probabilities"],  # ints become float32
        estimator.predict(np.array([[0, 1], [2, 3]], np.float32))["probabilities"],
    )


def test_predict_errors_name_the_problem(estimator, data):
    _, (vx, vy) = data
    with pytest.raises(ValueError, match=r"lacks; the signature is \{'x': float32 \(\?, 2\), 'y': int32 \(\?\)\}"):
        estimator.predict(images=vx[:1])
    with pytest.raises(ValueError, match="either input_fn=... or one-off inputs"):
        estimator.predict(vx[:1], input_fn=dataset_fn(vx, vy))
    with pytest.raises(ValueError, match="needs input_fn=... or one-off inputs"):
        estimator.predict()
    with pytest.raises(ValueError, match=r"'x' expects shape \(\?, 2\), got \(2,\) \(add the batch dimension"):
        estimator.predict(x=vx[0])
    with pytest.raises(ValueError, match=r"'x' expects shape \(\?, 2\), got \(1, 3\)"):
        estimator.predict(x=np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="'x' expects float32, got values of dtype <U1"):
        estimator.predict(x=[["a", "b"]])
    with pytest.raises(ValueError, match="got 2 positional inputs but the outputs need 1"):
        estimator.predict(vx[:1], vx[:1])
    with pytest.raises(ValueError, match="got feature 'x' twice"):
        estimator.predict(vx[:1], x=vx[:1])
    with pytest.raises(TypeError, match="predict\\(input_fn=fn\\)"):
        estimator.predict(dataset_fn(vx, vy))
    with pytest.raises(ValueError, match="prediction dataset yields feature 'z'"):
        estimator.predict(input_fn=lambda: tf.data.Dataset.from_tensor_slices({"z": vx}).batch(4))


def test_graph_does_not_grow(estimator, data):
    _, (vx, vy) = data
    estimator.train().validate()
    ops = len(estimator.graph.get_operations())
    for i in range(20):  # one op added per call would show; 20 calls of each kind
        fn = dataset_fn(vx[i % 5 :], vy[i % 5 :], batch=16)  # a fresh input function every call
        estimator.evaluate(fn)
        list(estimator.predict(input_fn=fn))
        estimator.predict(vx[:2])
    estimator.train(3).validate()
    assert len(estimator.graph.get_operations()) == ops


def test_tuple_datasets_are_keyed_by_position(tmp_path):
    def model_fn(features, is_training, params):
        logits = tf.layers.dense(features[0], 2)
        loss = tf.losses.sparse_softmax_cross_entropy(features[1], logits)
        return (
            TrainSpec(loss, tf.train.AdamOptimizer(0.1).minimize(loss, tf.train.get_global_step())),
            None,
            PredictSpec(tf.argmax(logits, 1)),
        )

    x, y = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32), np.arange(12, dtype=np.int32) % 2
    est = Elistimator(model_fn, tmp_path, verbose=False)
    est.setup(lambda: tf.data.Dataset.from_tensor_slices((x, y)).batch(4)).train()
    assert est.input_signature == {0: "float32 (?, 3)", 1: "int32 (?)"}
    assert est.predict(x[:5])["output"].shape == (5,)  # a single output tensor is keyed 'output'
    with pytest.raises(RuntimeError, match="needs an EvaluationSpec"):
        est.evaluate(lambda: tf.data.Dataset.from_tensor_slices((x, y)).batch(4))
    est.close()


def test_predict_without_predict_spec(tmp_path, data):
    (x, y), _ = data

    def model_fn(features, is_training, params):
        logits = tf.layers.dense(features["x"], 2)
        loss = tf.losses.sparse_softmax_cross_entropy(features["y"], logits)
        return (
            TrainSpec(loss, tf.train.GradientDescentOptimizer(0.1).minimize(loss, tf.train.get_global_step())),
            None,
            None,
        )

    est = Elistimator(model_fn, tmp_path, verbose=False).setup(dataset_fn(x, y))
    with pytest.raises(RuntimeError, match=r"predict\(\) needs a PredictSpec"):
        est.predict(x=x[:1])
    est.close()
