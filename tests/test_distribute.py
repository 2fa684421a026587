"""Data-parallel training with tf.distribute (issue 15): 2 replicas on 2 CPU devices train, validate,
save and track as one device does, on the same data, from the same initial weights."""

import mlflow
import numpy as np
import pytest

from conftest import blobs, dataset_fn, tiny_model_fn
from elistimator_tracking import Elistimator, EvaluationSpec, PredictSpec, TrainSpec
from elistimator_tracking._tf import tf, tf2

TWO_CPUS = {"config": tf.ConfigProto(device_count={"CPU": 2})}


def mirrored():
    return tf2.distribute.MirroredStrategy(devices=["/cpu:0", "/cpu:1"])


def mlp_model_fn(features, is_training, params):
    """A small MLP with seeded initial weights (the same on every build), tf.losses and tf.metrics."""
    init = tf.glorot_uniform_initializer(seed=7)
    hidden = tf.layers.dense(features["x"], 16, activation=tf.nn.tanh, kernel_initializer=init, name="hidden")
    logits = tf.layers.dense(hidden, 3, kernel_initializer=init, name="logits")
    loss = tf.losses.sparse_softmax_cross_entropy(labels=features["y"], logits=logits)
    train_op = tf.train.MomentumOptimizer(0.3, 0.9).minimize(loss, global_step=tf.train.get_global_step())
    classes = tf.argmax(logits, axis=1, output_type=tf.int32)
    per_example = tf.losses.sparse_softmax_cross_entropy(features["y"], logits, reduction=tf.losses.Reduction.NONE)
    metrics = {"accuracy": tf.metrics.accuracy(features["y"], classes),
               "mean_loss": tf.metrics.mean(per_example)}
    return (TrainSpec(loss, train_op), EvaluationSpec(loss, metrics),
            PredictSpec({"classes": classes, "probabilities": tf.nn.softmax(logits)}))


def three_classes(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n).astype(np.int32)
    x = (rng.normal(size=(n, 4)) + np.eye(3, 4)[y] * 1.5).astype(np.float32)
    return x, y


@pytest.fixture(scope="module")
def data():
    return three_classes(256, 0), three_classes(45, 1)  # 45: one validation batch of 64, split 22 / 23


def trained(model_dir, data, distribute=None, steps=12):
    """An Elistimator trained ``steps`` steps at global batch 64, its losses after each step, and its
    validation metrics; saved at the end."""
    (x, y), (vx, vy) = data
    losses = []
    est = Elistimator(mlp_model_fn, model_dir, verbose=False, tracking=False, summary_every_n_steps=1,
                      distribute=distribute, session_args=TWO_CPUS if distribute else None)
    est.setup(dataset_fn(x, y, batch=64), dataset_fn(vx, vy, batch=64))
    for _ in range(steps):
        est.train(1)
        losses.append(est.evaluate(dataset_fn(x[:64], y[:64], batch=64))["loss"])
    metrics = est.validate()
    est.save_ckpt()
    return est, losses, metrics


def test_two_replicas_train_and_validate_as_one_device(tmp_path, data):
    one, one_losses, one_metrics = trained(tmp_path / "one", data)
    two, two_losses, two_metrics = trained(tmp_path / "two", data, mirrored())
    assert two.global_step == one.global_step == 12
    np.testing.assert_allclose(two_losses, one_losses, rtol=1e-5, atol=1e-6)
    assert two_losses[-1] < two_losses[0] - 0.05  # it did learn
    assert two_metrics.keys() == one_metrics.keys() == {"accuracy", "mean_loss", "loss"}
    for name in one_metrics:
        assert two_metrics[name] == pytest.approx(one_metrics[name], rel=1e-5, abs=1e-6)
    assert two_metrics["loss"] == pytest.approx(two_metrics["mean_loss"], rel=1e-5)  # over all 45 examples
    np.testing.assert_allclose(two.predict(x=data[1][0])["probabilities"], one.predict(x=data[1][0])["probabilities"],
                               rtol=1e-5, atol=1e-6)
    weights_one = {v.op.name: v for v in one.graph.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES)}
    with two.graph.as_default():
        for variable in two.graph.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES):
            for copy in variable.values:  # every replica holds the same weights as the one device
                np.testing.assert_allclose(two.session.run(copy), one.session.run(weights_one[variable.name[:-2]]),
                                           rtol=1e-5, atol=1e-6)
    one.close()
    two.close()


def test_a_distributed_checkpoint_holds_one_copy_and_loads_on_one_device(tmp_path, data):
    two, _, metrics = trained(tmp_path / "two", data, mirrored(), steps=4)
    prefix = two.checkpoints[4]["file"]
    expected = two.predict(x=data[1][0])["classes"]
    two.close()
    names = [name for name, _ in tf.train.list_variables(str(prefix))]
    assert "hidden/kernel" in names and "global_step" in names
    assert not [name for name in names if "replica" in name]
    loaded = Elistimator.from_disk(tmp_path / "two", verbose=False, tracking=False)  # one CPU device
    assert loaded.global_step == 4
    assert loaded.evaluate(dataset_fn(*data[1], batch=64)) == pytest.approx(metrics, rel=1e-6)
    np.testing.assert_array_equal(loaded.predict(x=data[1][0])["classes"], expected)
    loaded.close()


def test_uneven_batches_are_split_and_weighted_by_examples(tmp_path, data):
    """Batches of 5 (3 + 2 examples) and a last batch of 1 (one replica gets none)."""
    (x, y), (vx, vy) = data
    est = Elistimator(mlp_model_fn, tmp_path / "two", verbose=False, tracking=False, distribute=mirrored(),
                      session_args=TWO_CPUS)
    est.setup(dataset_fn(x[:11], y[:11], batch=5), dataset_fn(vx[:11], vy[:11], batch=5))
    est.train()
    assert est.global_step == 3
    metrics = est.validate()
    per_batch = [est.evaluate(dataset_fn(vx[i:i + 1], vy[i:i + 1], batch=1)) for i in range(11)]
    assert metrics["loss"] == pytest.approx(np.mean([m["loss"] for m in per_batch]), rel=1e-5)
    assert metrics["accuracy"] == pytest.approx(np.mean([m["accuracy"] for m in per_batch]), rel=1e-6)
    assert len(next(est.predict(input_fn=dataset_fn(vx[:11], vy[:11], batch=5)))["classes"]) == 5
    est.close()


def test_a_plain_gradient_descent_model_counts_each_step_once(tmp_path):
    """``GradientDescentOptimizer.minimize(loss, global_step)`` under a strategy returns the step's
    assign as a variable, not an op: it is the train op all the same."""
    x, y = blobs(64)
    est = Elistimator(tiny_model_fn, tmp_path / "two", verbose=False, tracking=False, distribute=mirrored(),
                      session_args=TWO_CPUS).setup(dataset_fn(x, y, batch=16))
    est.train()
    assert est.global_step == 4
    est.close()


def test_the_run_records_the_strategy(tmp_path, data):
    (x, y), _ = data
    with Elistimator(mlp_model_fn, tmp_path / "two", verbose=False, distribute=mirrored(),
                     session_args=TWO_CPUS) as est:
        est.setup(dataset_fn(x, y, batch=64))
        est.train(1)
    params = mlflow.MlflowClient().get_run(est.run_id).data.params
    assert {k: params[k] for k in ("distribute.strategy", "distribute.num_replicas", "distribute.num_workers",
                                   "batch_size")} == {"distribute.strategy": "MirroredStrategy",
                                                      "distribute.num_replicas": "2",
                                                      "distribute.num_workers": "1", "batch_size": "64"}


@pytest.mark.parametrize("strategy, error, message", [
    (lambda: tf.distribute.experimental.ParameterServerStrategy(), ValueError,
     r"distribute=ParameterServerStrategyV1 is not supported.*ParameterServerStrategy needs a ClusterCoordinator"),
    (lambda: tf2.distribute.OneDeviceStrategy("/cpu:0"), ValueError, "OneDeviceStrategy is not supported"),
    (lambda: "mirrored", TypeError, "distribute must be a tf.distribute strategy .* got str"),
])
def test_unsupported_strategies_are_clear_errors(tmp_path, strategy, error, message):
    with pytest.raises(error, match=message):
        Elistimator(mlp_model_fn, tmp_path / "model", distribute=strategy())
    assert not (tmp_path / "model").exists()


def test_a_session_without_the_strategys_devices_is_a_clear_error(tmp_path, data):
    (x, y), _ = data
    est = Elistimator(mlp_model_fn, tmp_path / "model", verbose=False, tracking=False, distribute=mirrored())
    with pytest.raises(ValueError, match=r"places replicas on 2 CPU devices, but the session has 1; pass "
                                         r"session_args=\{'config': tf.ConfigProto\(device_count=\{'CPU': 2\}\)\}"):
        est.setup(dataset_fn(x, y, batch=64))
    assert est.graph is None
    est.close()
