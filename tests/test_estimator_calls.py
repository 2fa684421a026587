"""Issue 27, items 4-6: tf.estimator's model_dir layout, the calls it accepts, the errors it raises.

Every expected value was observed on the real tf.estimator (TensorFlow 2.15.1 + tensorflow-estimator
2.15.0): ``tests/estimator_parity/real_observed.json`` under the behaviour named in the comment.
"""

from __future__ import annotations

import glob
import os

import estimator_programs as programs
import numpy as np
import pytest
from test_estimator_contract import dummy_input_fn, estimator, incrementer, variable_fn

from elistimator_tracking import estimator as tf_estimator
from elistimator_tracking._tf import tf

ModeKeys = tf_estimator.ModeKeys


def top_tags(model_dir):
    tags = set()
    for path in glob.glob(os.path.join(model_dir, "events.out.tfevents.*")):
        for event in tf.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    return tags


# -- 4. the model_dir as tf.estimator's tools read it ----------------------------------------------------


def test_the_model_dir_reads_as_tf_estimators(tmp_path):
    config = tf_estimator.RunConfig(keep_checkpoint_max=2, save_summary_steps=1, log_step_count_steps=1)
    est = estimator(incrementer, tmp_path, config=config)
    est.train(dummy_input_fn, steps=5)
    est.train(dummy_input_fn, steps=5)
    latest = tf.train.latest_checkpoint(str(tmp_path))  # was None: the state file was under checkpoints/
    state = tf.train.get_checkpoint_state(str(tmp_path))
    # real: tf_latest_checkpoint_reads_the_model_dir ["10", true, ["5", "10"], 10]
    assert latest == est.latest_checkpoint() and latest.endswith("-10")
    assert [p.rsplit("-", 1)[-1] for p in state.all_model_checkpoint_paths] == ["5", "10"]
    assert tf.train.load_variable(latest, "global_step") == 10
    lines = (tmp_path / "checkpoint").read_text().splitlines()
    assert all(not os.path.isabs(line.split('"')[1]) for line in lines)  # real: checkpoint_contains_relative_paths
    assert (tmp_path / "graph.pbtxt").is_file()  # real: graph_pbtxt true
    # real: loss_summary_at_the_top_of_model_dir ["global_step/sec", "loss"]
    assert {"loss", "global_step/sec"} <= top_tags(tmp_path)
    assert (tmp_path / "checkpoints" / "checkpoint").is_file() and (tmp_path / "train").is_dir()  # ours as before
    est.close()


# -- 5. calls tf.estimator accepts ---------------------------------------------------------------------


def test_train_op_may_be_any_op_and_listeners_hear_of_every_save(tmp_path):
    saved = []

    class Listener(tf.train.CheckpointSaverListener):
        def after_save(self, session, global_step_value):
            saved.append(global_step_value)

    est = estimator(incrementer, tmp_path, config=tf_estimator.RunConfig(save_checkpoints_steps=10))
    est.train(dummy_input_fn, steps=26, saving_listeners=[Listener()])
    est.train(dummy_input_fn, steps=5, saving_listeners=[Listener()])
    # real: saving_listeners_are_used [[0, 10, 20, 26], ...], then [..., 26, 31]: saved when each train() starts
    assert saved == [0, 10, 20, 26, 26, 31]
    assert est.get_variable_value("global_step") == 31  # real: train_op_is_any_op [5, 10]
    est.close()


def test_evaluate_and_predict_before_any_checkpoint_use_the_initial_weights(tmp_path):
    def model_fn(features, labels, mode):
        v = tf.Variable([[16.0]], name="weight")
        return tf_estimator.EstimatorSpec(
            mode,
            loss=tf.constant(1.0),
            train_op=tf.assign_add(tf.train.get_global_step(), 1),
            predictions=features["x"] * v,
            eval_metric_ops={"mean": tf.metrics.mean(tf.Variable(2.0) + 1)},
        )

    scores = estimator(model_fn, tmp_path / "a").evaluate(dummy_input_fn, steps=1)
    # real: evaluate_without_checkpoint_uses_init {"global_step": 0, "loss": 1.0, "mean": 3.0}
    assert scores == {"global_step": 0, "loss": 1.0, "mean": 3.0}
    est = estimator(model_fn, tmp_path / "b")
    x = np.array([[1.0], [2.0]], np.float32)
    rows = est.predict(lambda: tf.data.Dataset.from_tensor_slices({"x": x}).batch(2))
    assert [float(p[0]) for p in rows] == [16.0, 32.0]  # real: predict_without_checkpoint_uses_init
    est.train(dummy_input_fn, steps=2)
    assert est.get_variable_value("global_step") == 2
    est.close()


def test_evaluate_and_predict_another_models_checkpoint(tmp_path):
    other = estimator(variable_fn(42.0), tmp_path / "other")
    other.train(dummy_input_fn, steps=7)
    mine = estimator(variable_fn(36.0), tmp_path / "mine")
    mine.train(dummy_input_fn, steps=2)
    scores = mine.evaluate(dummy_input_fn, steps=1, checkpoint_path=other.latest_checkpoint())
    again = mine.evaluate(dummy_input_fn, steps=1)
    # real: evaluate_another_models_checkpoint [42.0, 7, 36.0, 2]
    assert (scores["x"], scores["global_step"], again["x"], again["global_step"]) == (42.0, 7, 36.0, 2)
    assert 7 not in mine.elistimator.checkpoints and mine.elistimator.checkpoints[2]["metrics"]["x"] == 36.0
    found = next(mine.predict(dummy_input_fn, checkpoint_path=other.latest_checkpoint()))
    assert (found["y"][0], next(mine.predict(dummy_input_fn))["y"][0]) == (42.0, 36.0)  # real: [42.0, 36.0]
    with pytest.raises(ValueError, match="not a valid checkpoint"):  # real: ValueError
        mine.evaluate(dummy_input_fn, steps=1, checkpoint_path=str(tmp_path / "nothing"))
    other.close(), mine.close()


def test_hooks_see_the_model_graph_and_scaffolds_are_honored(tmp_path):
    fetched, initialized = [], []

    class StepHook(tf.train.SessionRunHook):
        def before_run(self, run_context):
            return tf.train.SessionRunArgs(tf.train.get_global_step())  # was None: outside the model graph

        def after_run(self, run_context, run_values):
            fetched.append(int(run_values.results))

    def model_fn(features, labels, mode):
        tf.get_variable("w", initializer=1.0)
        scaffold = tf.train.Scaffold(
            init_fn=lambda scaffold, session: initialized.append(1), saver=tf.train.Saver(max_to_keep=1)
        )
        return tf_estimator.EstimatorSpec(
            mode, loss=tf.constant(0.0), train_op=tf.assign_add(tf.train.get_global_step(), 1), scaffold=scaffold
        )

    est = estimator(model_fn, tmp_path, config=tf_estimator.RunConfig(save_checkpoints_steps=2))
    est.train(dummy_input_fn, steps=6, hooks=[StepHook()])
    # the i-th step's value before or after its increment: unordered in one session.run, as in tf.estimator
    assert len(fetched) == 6 and all(value - i in (0, 1) for i, value in enumerate(fetched))
    assert initialized == [1]  # real: scaffold_init_fn_is_used true
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert [p.rsplit("-", 1)[-1] for p in state.all_model_checkpoint_paths] == ["6"]  # real: scaffold_saver_is_used
    est.close()


def test_predict_converts_dtypes_only_where_no_value_changes(tmp_path):
    def model_fn(features, labels, mode):
        logits = tf.layers.dense(tf.cast(features["x"], tf.float32), 2, kernel_initializer=tf.ones_initializer())
        if mode == ModeKeys.PREDICT:
            return tf_estimator.EstimatorSpec(mode, predictions={"logits": logits})
        loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
        return tf_estimator.EstimatorSpec(mode, loss=loss, train_op=tf.assign_add(tf.train.get_global_step(), 1))

    x, y = programs.blobs(32)
    est = estimator(model_fn, tmp_path)
    est.train(lambda: tf.data.Dataset.from_tensor_slices(({"x": x.astype(np.float64)}, y)).batch(8), steps=1)
    rows = est.predict(
        lambda: tf.data.Dataset.from_tensor_slices({"x": np.array([[1.0, 2.0, 3.0]], np.float32)}).batch(1)
    )
    # real: predict_float32_after_training_on_float64 [6.0, 6.0] (was: refused, float32 is not float64)
    np.testing.assert_allclose(next(rows)["logits"], [6.0, 6.0])
    with pytest.raises(TypeError, match=r"yields 'x' as int64, but the model was built for float64"):
        next(est.predict(lambda: tf.data.Dataset.from_tensor_slices({"x": np.array([[1, 2, 3]], np.int64)}).batch(1)))
    est.close()


def test_export_savedmodel_takes_the_tf1_signature(tmp_path):
    est = estimator(programs.model_fn, tmp_path / "model", params={"learning_rate": 0.1})
    est.train(programs.train_input_fn(), steps=2)
    path = est.export_savedmodel(  # real: export_savedmodel_tf1_signature true (was: unexpected keyword)
        str(tmp_path / "export"), programs.serving_input_receiver_fn, strip_default_attrs=True
    )
    assert (tmp_path / "export" / os.path.basename(path.decode()) / "saved_model.pb").is_file()
    est.close()


def test_best_exporter(tmp_path):
    est = estimator(
        programs.model_fn,
        tmp_path / "model",
        params={"learning_rate": 0.1},
        config=tf_estimator.RunConfig(save_checkpoints_steps=5),
    )
    seen = []

    def never_better(best_eval_result, current_eval_result):
        seen.append(sorted(current_eval_result))
        return False

    best = tf_estimator.BestExporter(serving_input_receiver_fn=programs.serving_input_receiver_fn, exports_to_keep=2)
    never = tf_estimator.BestExporter("never", programs.serving_input_receiver_fn, compare_fn=never_better)
    _, exports = tf_estimator.train_and_evaluate(
        est,
        tf_estimator.TrainSpec(programs.train_input_fn(), max_steps=20),
        tf_estimator.EvalSpec(programs.eval_input_fn, steps=None, throttle_secs=0, exporters=[best, never]),
    )
    # real: best_exporter_exports_when_loss_improves ["best_exporter", true, true]; best_exporter_compare_fn
    # [0 exports after the first, [["accuracy", "global_step", "loss"]]]
    assert best.name == "best_exporter" and 1 <= len(os.listdir(tmp_path / "model" / "export" / "best_exporter")) <= 2
    assert len(os.listdir(tmp_path / "model" / "export" / "never")) == 1 and exports[1] is None
    assert seen[0] == ["accuracy", "global_step", "loss"]
    with pytest.raises(ValueError, match="must include best_eval_result argument"):  # real: ValueError
        tf_estimator.BestExporter(serving_input_receiver_fn=programs.serving_input_receiver_fn, compare_fn=lambda a: 1)
    est.close()


# -- 6. errors as tf.estimator raised them -----------------------------------------------------------


def test_errors_as_tf_estimator_raises_them(tmp_path):
    def with_metric(name):
        def model_fn(features, labels, mode):
            return tf_estimator.EstimatorSpec(
                mode,
                loss=tf.constant(1.0),
                train_op=tf.assign_add(tf.train.get_global_step(), 1),
                eval_metric_ops={name: (tf.constant(2.0), tf.no_op())},
            )

        return model_fn

    for name in ("global_step", "loss"):  # real: global_step_metric_raises_error, loss_metric_raises_error
        est = estimator(with_metric(name), tmp_path / name)
        est.train(dummy_input_fn, steps=1)
        with pytest.raises(ValueError, match=f"Metric with name `{name}` is not allowed"):  # was: overwritten
            est.evaluate(dummy_input_fn, steps=1)
        est.close()
    # real: config_must_be_a_run_config ValueError (ours a TypeError too, as before)
    for error in (ValueError, TypeError):
        with pytest.raises(error, match="config must be an instance of `RunConfig`"):
            estimator(incrementer, tmp_path / "c", config="NotARunConfig")
    est = estimator(lambda features, labels: "NotGoodNotGood", tmp_path / "d")
    with pytest.raises(ValueError, match="model_fn should return an EstimatorSpec"):  # real: ValueError
        est.train(dummy_input_fn, steps=1)
    with pytest.raises(ValueError, match="model_fn must be provided to Estimator"):  # real: ValueError
        estimator(None, tmp_path / "e")
    est = estimator(incrementer, tmp_path / "f", config=tf_estimator.RunConfig(save_checkpoints_secs=None))
    with pytest.raises(ValueError, match=r"Must specify steps > 0, given: 0"):  # real: steps0_raises_error
        est.train(dummy_input_fn, steps=0)
    with pytest.raises(ValueError, match="There should be a CheckpointSaverHook to use saving_listeners"):
        est.train(dummy_input_fn, steps=1, saving_listeners=[tf.train.CheckpointSaverListener()])
    with pytest.raises(ValueError, match="Replacing no_such_field is not supported"):  # real: ValueError
        tf_estimator.RunConfig().replace(no_such_field=1)
    with pytest.raises(ValueError, match="does not include params argument"):  # real: property_accessors
        estimator(incrementer, tmp_path / "g", params={"a": 1})
