"""train(): epochs, steps that continue across calls and epochs, global step, NaN, progress."""

import math
import os

import numpy as np
import pytest
from conftest import blobs, dataset_fn, tiny_model_fn

from elistimator_tracking import Elistimator, TrainSpec
from elistimator_tracking._tf import tf


def test_environment_defaults_let_tf_layers_run():
    assert os.environ["TF_USE_LEGACY_KERAS"] == "1"
    assert not tf.executing_eagerly()


def test_train_runs_one_epoch_and_returns_self(estimator):
    assert estimator.train() is estimator
    assert estimator.global_step == 9  # 70 examples in batches of 8


def test_train_steps_continue_across_calls_and_epochs(tmp_path):
    """Every batch is seen once per epoch, whatever the mix of train(steps) and train()."""
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    seen = []

    def recording_model_fn(features, is_training, params):
        w = tf.get_variable("w", [1, 2])
        logits = tf.matmul(features["x"], w)
        loss = tf.losses.sparse_softmax_cross_entropy(features["y"], logits)
        record = tf.py_func(lambda v: seen.append(v.ravel().tolist()) or np.float32(0), [features["x"]], tf.float32)
        with tf.control_dependencies([record]):
            train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss, tf.train.get_global_step())
        return TrainSpec(loss, train_op), None, None

    est = Elistimator(recording_model_fn, tmp_path, verbose=False)
    est.setup(dataset_fn(x, np.zeros(10, np.int32), batch=3))  # 4 batches: 3, 3, 3, 1
    est.train(2)
    assert est.global_step == 2
    est.train()  # finishes the current epoch: 2 more batches
    assert est.global_step == 4
    est.train(6)  # a whole epoch and 2 batches of the next
    assert est.global_step == 10
    est.train()
    assert est.global_step == 12
    est.train()  # the previous call ended the epoch: a fresh full epoch, never zero steps
    assert est.global_step == 16
    flat = [v for batch in seen for v in batch]
    assert flat == list(range(10)) * 4
    est.close()


def test_global_step_matches_steps_run_when_train_op_does_not_increment(tmp_path):
    def model_fn(features, is_training, params):
        logits = tf.layers.dense(features["x"], 2)
        loss = tf.losses.sparse_softmax_cross_entropy(features["y"], logits)
        return TrainSpec(loss, tf.train.GradientDescentOptimizer(0.1).minimize(loss)), None, None

    x, y = blobs(16)
    with pytest.warns(UserWarning, match="does not increment the global step"):
        est = Elistimator(model_fn, tmp_path, verbose=False).setup(dataset_fn(x, y))
    est.train(5)
    assert est.global_step == 5
    est.close()


def test_nan_loss_raises_naming_the_step(tmp_path):
    x, y = blobs(40)
    x[30] = np.nan  # lands in the 4th batch of 8
    est = Elistimator(tiny_model_fn, tmp_path, verbose=False).setup(dataset_fn(x, y))
    with pytest.raises(FloatingPointError, match=r"nan at global step 4 \(step 4 of this train\(\) call\)"):
        est.train()
    est.close()


def test_train_before_setup_is_a_clear_error(tmp_path):
    est = Elistimator(tiny_model_fn, tmp_path)
    with pytest.raises(RuntimeError, match=r"train\(\) needs setup"):
        est.train()
    with pytest.raises(RuntimeError, match=r"needs a model: call setup"):
        est.predict(x=np.zeros((1, 2), np.float32))


@pytest.mark.parametrize("steps, error", [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)])
def test_bad_steps(estimator, steps, error):
    with pytest.raises(error, match="steps must be a positive int"):
        estimator.train(steps)
    assert estimator.global_step == 0


def test_empty_training_data_is_an_error(tmp_path):
    x, y = blobs(8)
    est = Elistimator(tiny_model_fn, tmp_path, verbose=False).setup(dataset_fn(x[:0], y[:0]))
    with pytest.raises(ValueError, match="training input function yielded no batches"):
        est.train()
    est.close()


def test_progress_bars_learn_the_total_after_the_first_pass(tmp_path, data, capsys):
    (x, y), (vx, vy) = data
    est = Elistimator(tiny_model_fn, tmp_path).setup(dataset_fn(x, y), dataset_fn(vx, vy))
    est.train().validate()
    first = capsys.readouterr()
    est.train().validate()
    second = capsys.readouterr()
    est.train(4)
    third = capsys.readouterr()
    est.close()
    assert "Training (1): 9it" in first.err and "Validation: 4it" in first.err and "loss=" in first.err
    assert "Training (2): 100%" in second.err and "9/9" in second.err
    assert "Validation: 100%" in second.err and "4/4" in second.err
    assert "Training (3): 100%" in third.err and "4/4" in third.err
    metrics_line = first.out.strip().splitlines()[-1]
    accuracy, loss = metrics_line.split()
    assert accuracy.startswith("accuracy=") and loss.startswith("loss=")
    assert len(accuracy.split("=")[1]) == 6  # 0.xxxx


def test_verbose_false_prints_nothing(estimator, capsys):
    estimator.train()
    estimator.validate()
    list(
        estimator.predict(
            input_fn=lambda: tf.data.Dataset.from_tensor_slices({"x": np.zeros((4, 2), np.float32)}).batch(2)
        )
    )
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_training_learns(estimator):
    before = estimator.validate()["loss"]
    for _ in range(3):
        estimator.train()
    after = estimator.validate()
    assert after["loss"] < before and math.isfinite(after["loss"])
    assert after["accuracy"] >= 0.95


def test_setup_again_swaps_data_and_keeps_the_graph(estimator, data):
    (x, y), _ = data
    estimator.train()
    graph, ops = estimator.graph, len(estimator.graph.get_operations())
    estimator.setup(dataset_fn(x[:16], y[:16]))
    estimator.train()
    assert estimator.graph is graph and len(graph.get_operations()) == ops
    assert estimator.global_step == 9 + 2
    with pytest.raises(RuntimeError, match="validation_input_fn"):
        estimator.validate()  # the second setup had none
