"""validate() and evaluate(): exact example-weighted loss, fresh metrics, clear errors."""

import numpy as np
import pytest
from conftest import blobs, dataset_fn, tiny_model_fn

from elistimator_tracking import Elistimator, EvaluationSpec, TrainSpec
from elistimator_tracking._tf import tf


def squared_error_model_fn(features, is_training, params):
    """loss = mean((x - w)^2) with w = 0 at first: the exact mean is known in closed form."""
    w = tf.get_variable("w", [], initializer=tf.zeros_initializer())
    loss = tf.reduce_mean(tf.square(features["x"] - w))
    train_op = tf.train.GradientDescentOptimizer(0.01).minimize(loss, tf.train.get_global_step())
    metrics = {"mean_x": tf.metrics.mean(features["x"])}
    return TrainSpec(loss, train_op), EvaluationSpec(loss, metrics), None


def test_validation_loss_is_the_exact_mean_over_examples(tmp_path):
    """7 examples in batches of 3: the short last batch must not be over-weighted."""
    x = np.array([1, 2, 3, 4, 5, 6, 100], np.float32)
    fn = lambda: tf.data.Dataset.from_tensor_slices({"x": x}).batch(3)  # noqa: E731
    est = Elistimator(squared_error_model_fn, tmp_path, verbose=False).setup(fn, fn)
    metrics = est.validate()
    assert metrics["loss"] == pytest.approx(np.mean(x**2), rel=1e-6)
    assert metrics["mean_x"] == pytest.approx(np.mean(x), rel=1e-6)
    assert set(metrics) == {"mean_x", "loss"} and all(type(v) is float for v in metrics.values())
    est.close()


def test_metrics_start_fresh_on_every_call(estimator, data):
    """Each call's accuracy is that of its own data alone (counted from the predictions), never
    a running mean over earlier calls: here the true labels, then the flipped ones."""
    _, (vx, vy) = data
    estimator.train()
    classes = estimator.predict(x=vx)["classes"]
    for labels in (vy, 1 - vy, vy):
        assert estimator.evaluate(dataset_fn(vx, labels))["accuracy"] == pytest.approx(np.mean(classes == labels))
    assert np.mean(classes == vy) > 0.9  # so a running mean would differ from each call's own accuracy
    assert estimator.validate() == estimator.validate()


def test_evaluate_matches_validate_on_the_same_data(estimator, data):
    _, (vx, vy) = data
    estimator.train()
    assert estimator.evaluate(dataset_fn(vx, vy)) == pytest.approx(estimator.validate())


def test_evaluate_accepts_data_without_unneeded_features(tmp_path):
    """Evaluation needs only what loss and metrics read; extra model inputs may be absent."""

    def model_fn(features, is_training, params):
        w = tf.get_variable("w", [], initializer=tf.ones_initializer())
        loss = tf.reduce_mean(tf.square(features["x"] * w))
        out = features["unused_at_eval"] * w
        return (
            TrainSpec(
                loss + tf.reduce_mean(out),
                tf.train.GradientDescentOptimizer(0.1).minimize(loss, tf.train.get_global_step()),
            ),
            EvaluationSpec(loss),
            None,
        )

    x = np.ones(4, np.float32)
    est = Elistimator(model_fn, tmp_path, verbose=False).setup(
        lambda: tf.data.Dataset.from_tensor_slices({"x": x, "unused_at_eval": x}).batch(2)
    )
    assert est.evaluate(lambda: tf.data.Dataset.from_tensor_slices({"x": x}).batch(2)) == {"loss": 1.0}
    est.close()


def test_validate_without_validation_input_fn(tmp_path, data):
    (x, y), _ = data
    est = Elistimator(tiny_model_fn, tmp_path, verbose=False).setup(dataset_fn(x, y))
    with pytest.raises(RuntimeError, match=r"validate\(\) needs a validation_input_fn"):
        est.validate()
    est.close()


def test_validation_data_that_does_not_fit(tmp_path, data):
    (x, y), _ = data
    est = Elistimator(tiny_model_fn, tmp_path, verbose=False)
    with pytest.raises(ValueError, match=r"validation dataset yields 'x': float64 .* the signature is"):
        est.setup(dataset_fn(x, y), dataset_fn(x.astype(np.float64), y))
    with pytest.raises(ValueError, match=r"validation dataset yields feature 'extra', which the model's input"):
        est.setup(dataset_fn(x, y), dataset_fn(x, y, extra=y))
    assert est.graph is None  # nothing was built by the failed calls
    est.close()


def test_evaluate_errors(estimator, data):
    (x, y), _ = data
    with pytest.raises(ValueError, match=r"evaluation dataset lacks feature\(s\) 'y'"):
        estimator.evaluate(lambda: tf.data.Dataset.from_tensor_slices({"x": x}).batch(4))
    with pytest.raises(ValueError, match="evaluation input function yielded no batches"):
        estimator.evaluate(dataset_fn(x[:0], y[:0]))
    with pytest.raises(TypeError, match="evaluation input function must return a tf.data.Dataset, got list"):
        estimator.evaluate(lambda: [x, y])


def test_validation_without_evaluation_spec(tmp_path):
    def model_fn(features, is_training, params):
        spec = tiny_model_fn(features, is_training, params)
        return spec[0], None, spec[2]

    x, y = blobs(16)
    est = Elistimator(model_fn, tmp_path, verbose=False)
    with pytest.raises(ValueError, match="model_fn returned no EvaluationSpec"):
        est.setup(dataset_fn(x, y), dataset_fn(x, y))
    est.setup(dataset_fn(x, y))
    with pytest.raises(RuntimeError, match=r"evaluate\(\) needs an EvaluationSpec"):
        est.evaluate(dataset_fn(x, y))
    est.close()
