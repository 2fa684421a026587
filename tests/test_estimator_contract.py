"""Issue 27: what tf.estimator programs did that the front end got wrong, each checked against the real one.

Every expected value was observed on the real tf.estimator (TensorFlow 2.15.1 + tensorflow-estimator
2.15.0): ``tests/estimator_parity/real_observed.json`` under the behaviour named in the comment
(``tests/estimator_parity/run.py`` remakes it), or ``tests/data/tf_estimator_model_dir/observed.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import estimator_programs as programs
import numpy as np
import pytest

from elistimator_tracking import ModelDirectoryBusy
from elistimator_tracking import estimator as tf_estimator
from elistimator_tracking._tf import tf

sys.path.insert(0, str(Path(__file__).with_name("estimator_parity")))
import behaviours  # noqa: E402

ModeKeys = tf_estimator.ModeKeys
TF_ESTIMATOR_DIR = Path(__file__).with_name("data") / "tf_estimator_model_dir"


# estimator_test.py's dummy_input_fn, model_fn_global_step_incrementer and _make_model_fn(x), as the
# behaviours restate them
dummy_input_fn, incrementer, variable_fn = behaviours.make(tf, tf_estimator)


def estimator(model_fn, model_dir, **kwargs):
    return tf_estimator.Estimator(model_fn, model_dir=str(model_dir), tracking=False, **kwargs)


def classifier(model_dir, learning_rate=0.1, **kwargs):
    return estimator(programs.model_fn, model_dir, params={"learning_rate": learning_rate}, **kwargs)


# -- 1. warm start -------------------------------------------------------------------------------


def test_warm_start_from_a_model_dir_reproduces_the_source(tmp_path):
    source = classifier(tmp_path / "source", learning_rate=0.5)
    source.train(programs.train_input_fn(), steps=40)
    accuracy = source.evaluate(programs.eval_input_fn)["accuracy"]
    warm = classifier(tmp_path / "warm", learning_rate=0.0, warm_start_from=source.model_dir)
    warm.train(programs.train_input_fn(), steps=1)
    # real: warm_start_reproduces_the_source 0.0 (the case: 0.930 reproduced, ours scored 0.485)
    assert warm.evaluate(programs.eval_input_fn)["accuracy"] == accuracy
    for name in ("dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"):
        np.testing.assert_array_equal(warm.get_variable_value(name), source.get_variable_value(name))
    assert warm.get_variable_value("global_step") == 1  # real: warm_starts_from_a_model_dir [42.0, 5]
    source.close(), warm.close()


def test_warm_start_sources_and_settings(tmp_path):
    source = estimator(variable_fn(42.0), tmp_path / "source")
    source.train(dummy_input_fn, steps=10)
    os.remove(Path(source.model_dir) / "checkpoint")  # a directory of ours written before model_dir/checkpoint
    exported = source.export_saved_model(str(tmp_path / "export"), _receiver).decode()
    for n, start in enumerate([source.model_dir, source.latest_checkpoint(), exported]):
        warm = estimator(variable_fn(36.0), tmp_path / f"warm{n}", warm_start_from=start)
        warm.train(dummy_input_fn, steps=5)
        # real: warm_starts_from_a_model_dir [42.0, 5], ..._checkpoint_path 42.0, ..._saved_model 42.0
        assert (warm.get_variable_value("x"), warm.get_variable_value("global_step")) == (42.0, 5)
        warm.close()
    settings = tf_estimator.WarmStartSettings(ckpt_to_initialize_from=source.model_dir, vars_to_warm_start="nothing")
    cold = estimator(variable_fn(36.0), tmp_path / "cold", warm_start_from=settings)
    cold.train(dummy_input_fn, steps=1)
    assert cold.get_variable_value("x") == 36.0  # real: warm_start_settings_choose_variables [1.0, 20.0]
    counter = estimator(variable_fn(7.0, "x", trainable=False), tmp_path / "counter", warm_start_from=source.model_dir)
    counter.train(dummy_input_fn, steps=1)
    assert counter.get_variable_value("x") == 7.0  # real: warm_start_skips_non_trainable_by_default [5.0, 7.0]
    with pytest.raises(ValueError, match="warm_start_from must be a string or a WarmStartSettings"):
        estimator(variable_fn(1.0), tmp_path / "bad", warm_start_from=42)  # real: ValueError
    source.close(), cold.close(), counter.close()


def test_warm_start_only_for_a_model_dir_without_checkpoint(tmp_path):
    source = estimator(variable_fn(42.0), tmp_path / "source")
    source.train(dummy_input_fn, steps=1)
    estimator(variable_fn(36.0), tmp_path / "model").train(dummy_input_fn, steps=1).close()
    warm = estimator(variable_fn(50.0), tmp_path / "model", warm_start_from=source.model_dir)
    warm.train(dummy_input_fn, steps=1)
    assert warm.get_variable_value("x") == 36.0  # real: warm_start_is_ignored_once_model_dir_has_a_checkpoint 36.0
    fresh = estimator(variable_fn(36.0), tmp_path / "fresh", warm_start_from=source.model_dir)
    # real: evaluate_without_checkpoint_uses_warm_start [42.0, 0]; export_from_warm_start 42.0
    assert fresh.evaluate(dummy_input_fn, steps=1)["x"] == 42.0
    path = fresh.export_saved_model(str(tmp_path / "export"), _receiver).decode()
    assert tf.train.load_variable(os.path.join(path, "variables", "variables"), "x") == 42.0
    source.close(), warm.close(), fresh.close()


def _receiver():
    x = tf.placeholder(tf.float32, [None, 1], name="features_x")
    return tf_estimator.export.ServingInputReceiver({"x": x}, {"x": x})


# -- 2. a second Estimator on the same model_dir ---------------------------------------------------------


def test_a_second_estimator_on_the_model_dir_and_the_first_one_follows(tmp_path):
    first = estimator(variable_fn(1.0), tmp_path)
    first.train(dummy_input_fn, steps=3)
    second = estimator(variable_fn(1.0), tmp_path)
    second.train(dummy_input_fn, steps=4)  # was ModelDirectoryBusy
    # real: second_estimator_trains_while_the_first_lives [7, 7]; first_estimator_sees_the_seconds_checkpoint [7, 9]
    assert second.evaluate(dummy_input_fn, steps=1)["global_step"] == 7
    assert first.evaluate(dummy_input_fn, steps=1)["global_step"] == 7
    first.train(dummy_input_fn, steps=2)
    assert first.get_variable_value("global_step") == 9 and second.latest_checkpoint().endswith("model-9")
    assert sorted(json.loads((tmp_path / "elistimator.json").read_text())["checkpoints"]) == ["0", "3", "7", "9"]
    first.close(), second.close()


def test_an_estimator_that_missed_another_writers_commit_writes_nothing_when_it_closes(tmp_path):
    first = estimator(variable_fn(1.0), tmp_path)
    first.train(dummy_input_fn, steps=3)
    second = estimator(variable_fn(1.0), tmp_path)
    second.train(dummy_input_fn, steps=4)
    committed = (tmp_path / "elistimator.json").read_bytes()
    first.close()  # its view (steps 0 and 3) is stale: writing it would drop the second one's step 7
    assert (tmp_path / "elistimator.json").read_bytes() == committed
    second.close()
    assert sorted(json.loads((tmp_path / "elistimator.json").read_text())["checkpoints"]) == ["0", "3", "7"]


def test_a_notebook_cell_run_twice(tmp_path):
    steps = []
    for _ in range(2):  # est = Estimator(...); est.train(...); est.evaluate(...), then the cell again
        est = estimator(variable_fn(1.0), tmp_path)
        est.train(dummy_input_fn, steps=2)
        steps.append(est.evaluate(dummy_input_fn, steps=1)["global_step"])
        del est
    assert steps == [2, 4]  # real: notebook_cell_run_twice [2, 4]


def test_one_writer_while_a_call_runs(tmp_path):
    other = estimator(variable_fn(1.0), tmp_path)
    refused = []

    class TrainTheOther(tf.train.SessionRunHook):
        def after_run(self, run_context, run_values):
            if not refused:
                with pytest.raises(ModelDirectoryBusy) as error:
                    other.train(dummy_input_fn, steps=1)
                refused.append(str(error.value))

    est = estimator(variable_fn(1.0), tmp_path)
    est.train(dummy_input_fn, steps=3, hooks=[TrainTheOther()])
    assert refused and "is being written by another Elistimator" in refused[0]
    other.train(dummy_input_fn, steps=1)  # the call is over: the directory is free again
    assert other.get_variable_value("global_step") == 4
    est.close(), other.close()


# -- 3. a model_dir tf.estimator wrote --------------------------------------------------------------


def test_a_model_dir_written_by_tf_estimator_is_continued(tmp_path):
    observed = json.loads((TF_ESTIMATOR_DIR / "observed.json").read_text())
    model_dir = shutil.copytree(TF_ESTIMATOR_DIR, tmp_path / "model")
    est = tf_estimator.Estimator(programs.model_fn, str(model_dir), params={"learning_rate": 0.1})
    metrics = est.evaluate(programs.eval_input_fn)  # was: ValueError, no trained model
    assert metrics["global_step"] == 1500 and metrics["accuracy"] == observed["evaluate"]["accuracy"]
    assert metrics["loss"] == pytest.approx(observed["evaluate"]["loss"], rel=1e-5)
    predicted = [p["probabilities"] for p in est.predict(programs.predict_input_fn)]
    np.testing.assert_allclose(predicted, observed["probabilities"], rtol=1e-5)
    est.train(programs.train_input_fn(), steps=10)  # was: restarted from step 0 (global step 10)
    assert est.get_variable_value("global_step") == observed["global_step_after_train_steps_10"] == 1510
    run_id = est.elistimator.run_id
    est.close()
    import mlflow

    tags = mlflow.MlflowClient().get_run(run_id).data.tags
    assert tags["estimator.continued_from"] == str(model_dir / "model.ckpt-1500")
    assert tags["estimator.continued_from_step"] == "1500"
    state = tf.train.get_checkpoint_state(str(model_dir))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
        "model.ckpt-1500",
        "model-1500",
        "model-1510",
    ]


def test_predict_first_on_a_model_dir_written_by_tf_estimator(tmp_path):
    observed = json.loads((TF_ESTIMATOR_DIR / "observed.json").read_text())
    model_dir = shutil.copytree(TF_ESTIMATOR_DIR, tmp_path / "model")
    est = classifier(model_dir)
    predicted = [p["probabilities"] for p in est.predict(programs.predict_input_fn)]
    np.testing.assert_allclose(predicted, observed["probabilities"], rtol=1e-5)
    est.train(programs.train_input_fn(), steps=10)  # built again with the labels, from model.ckpt-1500
    assert est.get_variable_value("global_step") == 1510
    exported = est.export_saved_model(str(tmp_path / "export"), programs.serving_input_receiver_fn)
    assert (Path(exported.decode()) / "saved_model.pb").is_file()
    est.close()
