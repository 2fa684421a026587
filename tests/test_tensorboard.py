"""TensorBoard events in model_dir/train and model_dir/validation, read back by tensorboard."""

import numpy as np
import pytest
from conftest import blobs, dataset_fn, tiny_model_fn
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from elistimator_tracking import Elistimator
from elistimator_tracking._tf import tf


def scalars(logdir, tag):
    accumulator = EventAccumulator(str(logdir))
    accumulator.Reload()
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def test_training_loss_and_validation_metrics_at_the_global_step(tmp_path, data):
    (x, y), (vx, vy) = data
    est = Elistimator(tiny_model_fn, tmp_path, verbose=False, summary_every_n_steps=3)
    est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
    first = est.train().validate()
    est.train(4)
    second = est.validate()
    est.close()
    assert [step for step, _ in scalars(tmp_path / "train", "loss")] == [3, 6, 9, 12]
    assert scalars(tmp_path / "validation", "accuracy") == [
        (9, np.float32(first["accuracy"])),
        (13, np.float32(second["accuracy"])),
    ]
    assert [step for step, _ in scalars(tmp_path / "validation", "loss")] == [9, 13]
    accumulator = EventAccumulator(str(tmp_path / "train"))
    accumulator.Reload()
    assert accumulator.Tags()["graph"]


def test_model_summaries_are_written_every_n_steps(tmp_path):
    def model_fn(features, is_training, params):
        train, evaluation, predict = tiny_model_fn(features, is_training, params)
        tf.summary.histogram("inputs", features["x"])
        tf.summary.scalar("twice_loss", 2 * train.loss)
        return train, evaluation, predict

    x, y = blobs(40)
    est = Elistimator(model_fn, tmp_path, verbose=False, summary_every_n_steps=2).setup(dataset_fn(x, y))
    est.train()
    est.close()
    accumulator = EventAccumulator(str(tmp_path / "train"), size_guidance={"histograms": 0})  # 0: keep all
    accumulator.Reload()
    assert [e.step for e in accumulator.Histograms("inputs")] == [2, 4]
    twice = dict(scalars(tmp_path / "train", "twice_loss"))
    loss = dict(scalars(tmp_path / "train", "loss"))
    assert twice.keys() == loss.keys() == {2, 4}
    assert twice[4] == pytest.approx(2 * loss[4], rel=1e-5)


def test_input_data_never_reaches_the_graph_or_event_files(tmp_path):
    x = np.random.default_rng(0).normal(size=(50_000, 2)).astype(np.float32)  # 400 kB of features
    y = (x[:, 0] > 0).astype(np.int32)
    est = Elistimator(tiny_model_fn, tmp_path, verbose=False).setup(
        dataset_fn(x, y, batch=5000), dataset_fn(x, y, batch=5000)
    )
    est.train().validate()
    graph_def_bytes = est.graph.as_graph_def().ByteSize()
    est.close()
    event_bytes = sum(f.stat().st_size for f in tmp_path.rglob("events.out.tfevents.*"))
    assert graph_def_bytes < 100_000
    assert event_bytes < 100_000
