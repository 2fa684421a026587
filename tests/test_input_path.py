"""The input path: data stays out of the graph, the graph never grows, errors and threads, fallbacks."""

import json
import threading

import numpy as np
import pytest
from conftest import blobs, dataset_fn, tiny_model_fn

from elistimator_tracking import Elistimator, TrainSpec
from elistimator_tracking._tf import tf
from elistimator_tracking.streams import FeedStream, GraphStream

MARKER = 31337.125  # a float32 no model here computes: its bytes mark the training data


def marked_data(n: int = 64):
    x, y = blobs(n)
    x[:, 1] = MARKER
    return x, y


def test_the_training_data_is_in_no_saved_graph_and_no_event_file(tmp_path):
    x, y = marked_data()
    needle = np.full(8, MARKER, np.float32).tobytes()[:16]
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=False, summary_every_n_steps=1) as est:
        est.setup(dataset_fn(x, y), dataset_fn(x, y))
        est.train().validate()
        est.save_ckpt()
        assert isinstance(est._loops.train_stream, GraphStream)  # the in-graph path is the one under test
        assert needle not in est.graph.as_graph_def().SerializeToString()
    files = [
        *(tmp_path / "model" / "checkpoints").glob("*.meta"),
        *(tmp_path / "model").glob("train/*"),
        *(tmp_path / "model").glob("validation/*"),
    ]
    assert any(f.name.endswith(".meta") for f in files) and any("events" in f.name for f in files)
    for file in files:
        assert needle not in file.read_bytes(), file


def fresh_input_fns(vx, vy, i):
    return dataset_fn(vx[i % 5 :], vy[i % 5 :], batch=4 + i % 3)


@pytest.mark.parametrize("loaded", [False, True], ids=["built", "from_disk"])
def test_twenty_evaluate_and_predict_calls_with_fresh_input_functions_add_no_op(tmp_path, data, loaded):
    (x, y), (vx, vy) = data
    est = Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=False)
    est.setup(dataset_fn(x, y), dataset_fn(vx, vy)).train().validate()
    if loaded:
        est.save_ckpt()
        est.close()
        est = Elistimator.from_disk(tmp_path / "model", verbose=False, tracking=False)
        est.predict(x=vx[:1])
    ops = len(est.graph.get_operations())
    for i in range(20):
        est.evaluate(fresh_input_fns(vx, vy, i))
        assert sum(len(b["classes"]) for b in est.predict(input_fn=fresh_input_fns(vx, vy, i))) == len(vx) - i % 5
        est.predict(vx[:2])
    assert len(est.graph.get_operations()) == ops
    est.close()


def test_an_error_inside_the_pipeline_reaches_the_caller_with_its_message(tmp_path, data):
    (x, y), _ = data

    x = x.copy()
    x[20] = np.nan

    def failing_input_fn():  # fails in the batch holding example 20
        return (
            tf.data.Dataset.from_tensor_slices({"x": x, "y": y})
            .map(lambda e: {"x": tf.debugging.check_numerics(e["x"], "the input pipeline read a NaN"), "y": e["y"]})
            .batch(8)
        )

    before = threading.active_count()
    est = Elistimator(tiny_model_fn, tmp_path, verbose=False, tracking=False)
    est.setup(failing_input_fn, failing_input_fn)
    assert isinstance(est._loops.train_stream, GraphStream)
    with pytest.raises(tf.errors.InvalidArgumentError, match="the input pipeline read a NaN"):
        est.train()
    with pytest.raises(tf.errors.InvalidArgumentError, match="the input pipeline read a NaN"):
        est.validate()
    est.close()
    assert threading.active_count() == before


def test_a_python_error_in_a_generator_pipeline_reaches_the_caller(tmp_path, data):
    (x, y), _ = data

    def generate():
        for i in range(0, 24, 8):
            if i == 16:
                raise KeyError("record 16 is missing")
            yield {"x": x[i : i + 8], "y": y[i : i + 8]}

    def input_fn():
        return tf.data.Dataset.from_generator(
            generate, output_signature={"x": tf.TensorSpec([None, 2], tf.float32), "y": tf.TensorSpec([None], tf.int32)}
        )

    before = threading.active_count()
    est = Elistimator(tiny_model_fn, tmp_path, verbose=False, tracking=False)
    est.setup(input_fn, input_fn)
    assert isinstance(est._loops.train_stream, GraphStream)  # the generator is called from the model's session
    with pytest.raises(tf.errors.OpError, match="record 16 is missing"):
        est.train()
    assert est.global_step == 2
    with pytest.raises(tf.errors.OpError, match="record 16 is missing"):
        est.validate()
    est.close()
    assert threading.active_count() == before


def test_generator_data_trains_with_the_same_epochs(tmp_path):
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    y = np.zeros(10, np.int32)

    def input_fn():
        return tf.data.Dataset.from_generator(
            lambda: iter([{"x": x[i : i + 3], "y": y[i : i + 3]} for i in range(0, 10, 3)]),
            output_signature={"x": tf.TensorSpec([None, 1], tf.float32), "y": tf.TensorSpec([None], tf.int32)},
        )

    def model_fn(features, is_training, params):
        logits = tf.layers.dense(features["x"], 2)
        loss = tf.losses.sparse_softmax_cross_entropy(features["y"], logits)
        return (
            TrainSpec(loss, tf.train.GradientDescentOptimizer(0.1).minimize(loss, tf.train.get_global_step())),
            None,
            None,
        )

    with Elistimator(model_fn, tmp_path, verbose=False, tracking=False) as est:
        est.setup(input_fn)
        est.train(2)
        est.train()
        assert est.global_step == 4
        est.train(6)
        assert est.global_step == 10


def test_threads_stop_when_the_estimator_closes(tmp_path, data):
    (x, y), (vx, vy) = data
    before = set(threading.enumerate())
    with Elistimator(tiny_model_fn, tmp_path, verbose=False, tracking=False) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        est.train(3).validate()
        batches = est.predict(input_fn=dataset_fn(vx, vy))
        next(batches)  # a generator left open
    assert set(threading.enumerate()) == before


def test_interleaved_prediction_generators_each_see_their_own_data(estimator, data):
    _, (vx, vy) = data
    first = estimator.predict(input_fn=dataset_fn(vx, vy, batch=10))
    second = estimator.predict(input_fn=dataset_fn(vx[:20], vy[:20], batch=5))
    pairs = list(zip(first, second, strict=False))
    assert [len(a["classes"]) for a, _ in pairs] == [10, 10, 10]
    assert [len(b["classes"]) for _, b in pairs] == [5, 5, 5]
    np.testing.assert_array_equal(np.concatenate([a["classes"] for a, _ in pairs]), estimator.predict(x=vx)["classes"])
    third = list(estimator.predict(input_fn=dataset_fn(vx, vy, batch=10)))  # the slot is free again
    assert [len(b["classes"]) for b in third] == [10, 10, 10]


def test_a_model_saved_without_the_input_stage_is_fed(tmp_path, data):
    """Model directories written before in-graph input name no input stage: batches are fed."""
    (x, y), (vx, vy) = data
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=False) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy)).train()
        metrics = est.validate()
        est.save_ckpt()
    path = tmp_path / "model" / "elistimator.json"
    metadata = json.loads(path.read_text())
    metadata["graph"].pop("input")
    metadata["graph"].pop("local_init")
    path.write_text(json.dumps(metadata))
    with Elistimator.from_disk(tmp_path / "model", verbose=False, tracking=False) as est:
        assert est.evaluate(dataset_fn(vx, vy)) == pytest.approx(metrics)
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        assert isinstance(est._loops.train_stream, FeedStream)
        est.train(3)
        assert est.global_step == 12
