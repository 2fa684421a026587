"""Data-parallel training with tf.distribute (issue 15): 2 replicas on 2 CPU devices train, validate,
save and track as one device does, on the same data, from the same initial weights."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import blobs, dataset_fn, history, stored_steps, tiny_model_fn
from distribute_worker import PEER_TIMEOUT_MS, examples

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
    metrics = {"accuracy": tf.metrics.accuracy(features["y"], classes), "mean_loss": tf.metrics.mean(per_example)}
    return (
        TrainSpec(loss, train_op),
        EvaluationSpec(loss, metrics),
        PredictSpec({"classes": classes, "probabilities": tf.nn.softmax(logits)}),
    )


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
    est = Elistimator(
        mlp_model_fn,
        model_dir,
        verbose=False,
        tracking=False,
        summary_every_n_steps=1,
        distribute=distribute,
        session_args=TWO_CPUS if distribute else None,
    )
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
    np.testing.assert_allclose(
        two.predict(x=data[1][0])["probabilities"], one.predict(x=data[1][0])["probabilities"], rtol=1e-5, atol=1e-6
    )
    weights_one = {v.op.name: v for v in one.graph.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES)}
    with two.graph.as_default():
        for variable in two.graph.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES):
            for copy in variable.values:  # every replica holds the same weights as the one device
                np.testing.assert_allclose(
                    two.session.run(copy), one.session.run(weights_one[variable.name[:-2]]), rtol=1e-5, atol=1e-6
                )
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
    est = Elistimator(
        mlp_model_fn, tmp_path / "two", verbose=False, tracking=False, distribute=mirrored(), session_args=TWO_CPUS
    )
    est.setup(dataset_fn(x[:11], y[:11], batch=5), dataset_fn(vx[:11], vy[:11], batch=5))
    est.train()
    assert est.global_step == 3
    metrics = est.validate()
    per_batch = [est.evaluate(dataset_fn(vx[i : i + 1], vy[i : i + 1], batch=1)) for i in range(11)]
    assert metrics["loss"] == pytest.approx(np.mean([m["loss"] for m in per_batch]), rel=1e-5)
    assert metrics["accuracy"] == pytest.approx(np.mean([m["accuracy"] for m in per_batch]), rel=1e-6)
    assert len(next(est.predict(input_fn=dataset_fn(vx[:11], vy[:11], batch=5)))["classes"]) == 5
    est.close()


def test_a_plain_gradient_descent_model_counts_each_step_once(tmp_path):
    """``GradientDescentOptimizer.minimize(loss, global_step)`` under a strategy returns the step's
    assign as a variable, not an op: it is the train op all the same."""
    x, y = blobs(64)
    est = Elistimator(
        tiny_model_fn, tmp_path / "two", verbose=False, tracking=False, distribute=mirrored(), session_args=TWO_CPUS
    ).setup(dataset_fn(x, y, batch=16))
    est.train()
    assert est.global_step == 4
    est.close()


def test_the_run_records_the_strategy(tmp_path, data):
    (x, y), _ = data
    with Elistimator(
        mlp_model_fn, tmp_path / "two", verbose=False, distribute=mirrored(), session_args=TWO_CPUS
    ) as est:
        est.setup(dataset_fn(x, y, batch=64))
        est.train(1)
    params = mlflow.MlflowClient().get_run(est.run_id).data.params
    assert {
        k: params[k] for k in ("distribute.strategy", "distribute.num_replicas", "distribute.num_workers", "batch_size")
    } == {
        "distribute.strategy": "MirroredStrategy",
        "distribute.num_replicas": "2",
        "distribute.num_workers": "1",
        "batch_size": "64",
    }


@pytest.mark.parametrize(
    "strategy, error, message",
    [
        (
            lambda: tf.distribute.experimental.ParameterServerStrategy(),
            ValueError,  # TF 2's needs eager mode
            r"distribute=ParameterServerStrategyV1 is not supported"
            r".*ParameterServerStrategy needs a ClusterCoordinator",
        ),
        (
            lambda: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
            ValueError,
            r"distribute=MirroredStrategyV1 is not supported.*TensorFlow 2's classes \(not tf.compat.v1.distribute's\)",
        ),
        (lambda: tf2.distribute.OneDeviceStrategy("/cpu:0"), ValueError, "OneDeviceStrategy is not supported"),
        (lambda: "mirrored", TypeError, "distribute must be a tf.distribute strategy .* got str"),
    ],
)
def test_unsupported_strategies_are_clear_errors(tmp_path, strategy, error, message):
    with pytest.raises(error, match=message):
        Elistimator(mlp_model_fn, tmp_path / "model", distribute=strategy())
    assert not (tmp_path / "model").exists()


def test_a_session_without_the_strategys_devices_is_a_clear_error(tmp_path, data):
    (x, y), _ = data
    est = Elistimator(mlp_model_fn, tmp_path / "model", verbose=False, tracking=False, distribute=mirrored())
    with pytest.raises(
        ValueError,
        match=r"places replicas on 2 CPU devices, but the session has 1; pass "
        r"session_args=\{'config': tf.ConfigProto\(device_count=\{'CPU': 2\}\)\}",
    ):
        est.setup(dataset_fn(x, y, batch=64))
    assert est.graph is None
    est.close()


# -- MultiWorkerMirroredStrategy: 2 processes on 127.0.0.1 -----------------------------------------

WORKER = Path(__file__).with_name("distribute_worker.py")


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(model_dir, epochs):
    """Both workers of the job, each with its TF_CONFIG, the same script and the same model_dir."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(WORKER.parents[1]), *sys.path]),
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        }
        workers.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), str(model_dir), str(epochs)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                cwd=model_dir.parent,
            )
        )
    return workers


def lines_of(worker, timeout=240):
    worker.wait(timeout=timeout)
    return [line.split(maxsplit=2) for line in worker.stdout.read().splitlines()]


@pytest.mark.slow
def test_two_workers_train_one_run_with_every_checkpoint_once(tmp_path):
    workers = start_workers(tmp_path / "model", 3)
    outputs = [lines_of(worker) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    assert outputs[0] == outputs[1] == [["saved", "4"], ["saved", "8"], ["saved", "12"], ["done", "12"]]
    client = mlflow.MlflowClient()
    runs = client.search_runs(
        [client.get_experiment_by_name("Default").experiment_id], "attributes.run_name = 'two-workers'"
    )
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    params = runs[0].data.params
    assert (params["distribute.strategy"], params["distribute.num_replicas"], params["distribute.num_workers"]) == (
        "MultiWorkerMirroredStrategy",
        "2",
        "2",
    )
    assert stored_steps(client, runs[0].info.run_id) == [4, 8, 12]
    assert [step for step, _ in history(client, runs[0].info.run_id, "validation/accuracy")] == [4, 8, 12]
    loaded = Elistimator.from_disk(tmp_path / "model", verbose=False, tracking=False)  # one device, no peers
    assert loaded.global_step == 12 and sorted(loaded.checkpoints) == [4, 8, 12]
    validation = examples(40, 1)
    metrics = loaded.evaluate(
        lambda: tf.data.Dataset.from_tensor_slices({"x": validation[0], "y": validation[1]}).batch(16)
    )
    assert metrics == pytest.approx(loaded.checkpoints[12]["metrics"], rel=1e-5)
    loaded.close()


@pytest.mark.slow
def test_a_killed_worker_is_a_clear_error_on_the_other_within_the_timeout(tmp_path):
    chief, worker = start_workers(tmp_path / "model", 0)
    saved = []
    for line in chief.stdout:
        saved.append(line.split())
        if line.startswith("saved 8"):
            break
    worker.send_signal(signal.SIGKILL)
    rest = lines_of(chief, timeout=PEER_TIMEOUT_MS / 1000 + 60)
    assert chief.returncode == 3
    lost = [line for line in rest if line[0] == "lost"]
    assert lost, rest
    assert float(lost[0][1]) <= PEER_TIMEOUT_MS / 1000 + 10  # the step failed at the peer timeout
    assert "a worker of this 2-worker MultiWorkerMirroredStrategy job stopped answering" in lost[0][2]
    last = max(int(line[1]) for line in saved + rest if line[0] == "saved")
    loaded = Elistimator.from_disk(tmp_path / "model", verbose=False, tracking=False)
    assert loaded.global_step == last
    assert loaded.predict(x=examples(5, 2)[0])["classes"].shape == (5,)
    loaded.close()


def estimator_model_fn(features, labels, mode):
    """tf.estimator's form of the MLP above (seeded weights, Momentum)."""
    from elistimator_tracking import estimator as tf_estimator

    init = tf.glorot_uniform_initializer(seed=7)
    hidden = tf.layers.dense(features["x"], 16, activation=tf.nn.tanh, kernel_initializer=init, name="hidden")
    logits = tf.layers.dense(hidden, 3, kernel_initializer=init, name="logits")
    classes = tf.argmax(logits, axis=1, output_type=tf.int32)
    if mode == tf_estimator.ModeKeys.PREDICT:
        return tf_estimator.EstimatorSpec(mode, predictions={"classes": classes})
    loss = tf.losses.sparse_softmax_cross_entropy(labels=labels, logits=logits)
    train_op = tf.train.MomentumOptimizer(0.3, 0.9).minimize(loss, global_step=tf.train.get_global_step())
    return tf_estimator.EstimatorSpec(
        mode, loss=loss, train_op=train_op, eval_metric_ops={"accuracy": tf.metrics.accuracy(labels, classes)}
    )


def test_run_config_train_distribute_trains_the_estimator_as_one_device(tmp_path, data):
    from elistimator_tracking import estimator as tf_estimator

    (x, y), (vx, vy) = data

    def input_fn():
        return tf.data.Dataset.from_tensor_slices(({"x": x}, y)).batch(64).repeat()

    def eval_input_fn():
        return tf.data.Dataset.from_tensor_slices(({"x": vx}, vy)).batch(64)

    results = []
    for name, strategy in (("one", None), ("two", mirrored())):
        config = tf_estimator.RunConfig(
            train_distribute=strategy,
            session_config=TWO_CPUS["config"],
            save_checkpoints_steps=1000,  # when train() starts and at its end (None for both: none, as tf.estimator)
        )
        est = tf_estimator.Estimator(estimator_model_fn, str(tmp_path / name), config=config, tracking=False)
        est.train(input_fn, steps=8)
        results.append(est.evaluate(eval_input_fn))
        est.close()
    one, two = results
    assert one["global_step"] == two["global_step"] == 8
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-4) and two["accuracy"] == pytest.approx(one["accuracy"])
    loaded = Elistimator.from_disk(str(tmp_path / "two"), verbose=False)  # one copy of each variable, one device
    as_loaded = lambda: tf.data.Dataset.from_tensor_slices({"x": vx, "label": vy}).batch(64)  # noqa: E731
    assert loaded.evaluate(as_loaded)["loss"] == pytest.approx(two["loss"], rel=1e-4)
    loaded.close()
    with pytest.raises(ValueError, match="eval_distribute must be None or the train_distribute strategy"):
        tf_estimator.Estimator(
            estimator_model_fn,
            str(tmp_path / "three"),
            tracking=False,
            config=tf_estimator.RunConfig(train_distribute=mirrored(), eval_distribute=mirrored()),
        )
