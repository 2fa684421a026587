"""The tf.estimator contract: specs, input functions, hooks, TensorBoard, repeated calls, bad input."""

from __future__ import annotations

import inspect

import estimator_programs as programs
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from elistimator_tracking import estimator as tf_estimator
from elistimator_tracking._tf import tf

ModeKeys = tf_estimator.ModeKeys


def new_estimator(model_dir, model_fn=programs.model_fn, **config):
    config.setdefault("save_checkpoints_steps", 10)
    takes_params = "params" in inspect.signature(model_fn).parameters  # tf.estimator refused params otherwise
    return tf_estimator.Estimator(
        model_fn,
        model_dir=str(model_dir),
        params={"learning_rate": 0.1} if takes_params else None,
        config=tf_estimator.RunConfig(**config),
        tracking=False,
    )


def scalars(logdir, tag):
    accumulator = EventAccumulator(str(logdir))
    accumulator.Reload()
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


# -- EstimatorSpec ----------------------------------------------------------------------------------


def test_each_mode_requires_its_fields_and_names_them():
    with tf.Graph().as_default():
        loss, op = tf.constant(1.0), tf.no_op()
        with pytest.raises(ValueError, match=r"mode='train'.*train_op is missing"):
            tf_estimator.EstimatorSpec(ModeKeys.TRAIN, loss=loss)
        with pytest.raises(ValueError, match=r"mode='train'.*loss is missing"):
            tf_estimator.EstimatorSpec(ModeKeys.TRAIN, train_op=op)
        with pytest.raises(ValueError, match=r"mode='eval'.*loss is missing"):
            tf_estimator.EstimatorSpec(ModeKeys.EVAL)
        with pytest.raises(ValueError, match=r"mode='infer'.*predictions is missing"):
            tf_estimator.EstimatorSpec(ModeKeys.PREDICT)
        with pytest.raises(ValueError, match=r"loss must be a scalar tensor, got shape \(3,\)"):
            tf_estimator.EstimatorSpec(ModeKeys.EVAL, loss=tf.constant([1.0, 2.0, 3.0]))
        with pytest.raises(TypeError, match=r"eval_metric_ops\['acc'\] must be a \(value, update_op\) pair"):
            tf_estimator.EstimatorSpec(ModeKeys.EVAL, loss=loss, eval_metric_ops={"acc": loss})
        with pytest.raises(ValueError, match="mode must be one of"):
            tf_estimator.EstimatorSpec("training", loss=loss)
        spec = tf_estimator.EstimatorSpec(ModeKeys.PREDICT, predictions={"y": loss})
        assert list(spec.export_outputs) == ["serving_default"]  # tf.estimator's default PredictOutput
        assert tf_estimator.EstimatorSpec(ModeKeys.EVAL, loss=tf.reshape(loss, [1])).loss.shape.rank == 0


def test_keras_metric_objects_are_accepted_as_eval_metric_ops(tmp_path):
    def model_fn(features, labels, mode):
        logits = tf.layers.dense(features["x"], 2)
        if mode == ModeKeys.PREDICT:
            return tf_estimator.EstimatorSpec(mode, predictions=logits)
        loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
        if mode == ModeKeys.EVAL:
            metric = tf.keras.metrics.SparseCategoricalAccuracy()
            metric.update_state(labels, logits)
            return tf_estimator.EstimatorSpec(
                mode,
                loss=loss,
                eval_metric_ops={
                    "keras_accuracy": metric,
                    "accuracy": tf.metrics.accuracy(labels, tf.argmax(logits, 1)),
                },
            )
        train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss, tf.train.get_global_step())
        return tf_estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)

    est = new_estimator(tmp_path, model_fn)
    est.train(programs.train_input_fn(), steps=20)
    first, second = est.evaluate(programs.eval_input_fn), est.evaluate(programs.eval_input_fn)
    assert first["keras_accuracy"] == pytest.approx(first["accuracy"]) == pytest.approx(second["keras_accuracy"])
    est.close()


def test_a_model_fn_returning_no_spec_fails_and_leaves_nothing_written(tmp_path):
    def model_fn(features, labels, mode):
        return tf.layers.dense(features["x"], 1)

    est = new_estimator(tmp_path / "model", model_fn)
    # tf.estimator 2.15: ValueError('model_fn should return an EstimatorSpec.'); ours is a ValueError and a TypeError
    with pytest.raises(
        ValueError, match=r"model_fn should return an EstimatorSpec \(mode 'train'\), got SymbolicTensor"
    ):
        est.train(programs.train_input_fn(), steps=1)
    assert not (tmp_path / "model" / "elistimator.json").exists() and not (tmp_path / "model" / "checkpoints").exists()
    est.close()


def test_keras_layers_made_inside_model_fn_share_their_weights_across_modes(tmp_path):
    """The official r1 MNIST style: a tf.keras.Sequential built anew in every call of model_fn."""

    def model_fn(features, labels, mode):
        model = tf.keras.Sequential([tf.keras.layers.Dense(8, activation="relu"), tf.keras.layers.Dense(2)])
        logits = model(features["x"], training=mode == ModeKeys.TRAIN)
        if mode == ModeKeys.PREDICT:
            return tf_estimator.EstimatorSpec(mode, predictions={"logits": logits})
        loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
        train_op = tf.train.AdamOptimizer(0.05).minimize(loss, tf.train.get_global_step())
        return tf_estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)

    est = new_estimator(tmp_path / "model", model_fn)
    est.train(programs.train_input_fn(), steps=30)
    graph = est.elistimator.graph
    assert sorted(v.op.name for v in graph.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES)) == [
        "sequential/dense/bias",
        "sequential/dense/kernel",
        "sequential/dense_1/bias",
        "sequential/dense_1/kernel",
    ]
    assert est.evaluate(programs.eval_input_fn)["loss"] < 0.5  # the trained weights, not fresh ones
    exported = est.export_saved_model(str(tmp_path / "export"), programs.serving_input_receiver_fn).decode()
    x, _ = programs.blobs(10, seed=2)
    with tf.Graph().as_default(), tf.Session() as session:
        meta = tf.saved_model.loader.load(session, ["serve"], exported)
        signature = meta.signature_def["serving_default"]
        served = session.run(signature.outputs["logits"].name, {signature.inputs["x"].name: x})
    predicted = np.stack([p["logits"] for p in est.predict(programs.predict_input_fn)])
    np.testing.assert_allclose(served, predicted, rtol=1e-5)
    est.close()


# -- input functions ----------------------------------------------------------------------------------


def test_every_input_fn_form_reaches_model_fn_in_its_structure(tmp_path):
    seen = {}

    def model_fn(features, labels, mode, params, config):
        seen[mode] = (
            sorted(features) if isinstance(features, dict) else "tensor",
            sorted(labels) if isinstance(labels, dict) else type(labels).__name__,
        )
        assert config.save_checkpoints_steps == 10 and params["learning_rate"] == 0.1
        x = features["x"] if isinstance(features, dict) else features
        logits = tf.layers.dense(x, 2)
        y = labels["y"] if isinstance(labels, dict) else labels
        loss = tf.losses.sparse_softmax_cross_entropy(y, logits) if labels is not None else None
        train_op = tf.train.AdamOptimizer().minimize(loss, tf.train.get_global_step()) if loss is not None else None
        if mode == ModeKeys.PREDICT:
            return tf_estimator.EstimatorSpec(mode, predictions=tf.argmax(logits, 1))
        return tf_estimator.EstimatorSpec(mode, loss=loss, train_op=train_op if mode == ModeKeys.TRAIN else None)

    x, y = programs.blobs(32)
    tensor_and_dict = lambda: tf.data.Dataset.from_tensor_slices((x, {"y": y})).batch(8)  # noqa: E731
    est = new_estimator(tmp_path / "a", model_fn)
    est.train(tensor_and_dict, steps=3)
    assert seen == {
        ModeKeys.TRAIN: ("tensor", ["y"]),
        ModeKeys.EVAL: ("tensor", ["y"]),
        ModeKeys.PREDICT: ("tensor", "NoneType"),
    }

    def with_args(params, mode, config):  # input_fn takes params/mode/config by name
        assert mode == ModeKeys.EVAL and params["learning_rate"] == 0.1 and config.model_dir == est.model_dir
        return tf.data.Dataset.from_tensor_slices((x, {"y": y})).batch(8)

    assert est.evaluate(with_args)["global_step"] == 3

    def iterator_style():  # the old make_one_shot_iterator().get_next() style
        return tf.data.make_one_shot_iterator(tf.data.Dataset.from_tensor_slices((x, {"y": y})).batch(8)).get_next()

    assert est.evaluate(iterator_style)["loss"] == pytest.approx(est.evaluate(with_args)["loss"], rel=1e-6)
    predictions = list(est.predict(lambda: tf.data.Dataset.from_tensor_slices(x).batch(5)))
    assert len(predictions) == 32 and predictions[0].shape == ()  # one tensor: arrays, not dicts
    assert len(list(est.predict(tensor_and_dict, yield_single_examples=False))) == 4  # labels ignored
    with pytest.raises(
        ValueError,
        match="yields features as a dict with keys \\['x'\\], but the model was built for features as a single tensor",
    ):
        list(est.predict(lambda: tf.data.Dataset.from_tensor_slices({"x": x}).batch(5)))
    with pytest.raises(TypeError, match="input_fn must return a tf.data.Dataset .* got list"):
        est.train(lambda: [x, y], steps=1)
    est.close()


# -- train / evaluate / predict -------------------------------------------------------------------------


def test_steps_max_steps_and_the_end_of_the_data(tmp_path):
    est = new_estimator(tmp_path, save_checkpoints_steps=100, keep_checkpoint_max=2)
    with pytest.raises(ValueError, match="Can not provide both steps and max_steps"):
        est.train(programs.train_input_fn(), steps=5, max_steps=5)
    est.train(programs.train_input_fn(), max_steps=7)
    assert est.get_variable_value("global_step") == 7
    est.train(programs.train_input_fn(), max_steps=7)  # already there: skipped
    est.train(programs.train_input_fn(), steps=4)
    assert est.get_variable_value("global_step") == 11
    est.train(programs.train_input_fn(repeat=False))  # no steps: one pass over 96 examples in batches of 16
    assert est.get_variable_value("global_step") == 17
    checkpoints = est.elistimator.checkpoints
    # saved when training starts (step 0: tf.estimator's model.ckpt-0) and at the end of every train()
    assert sorted(checkpoints) == [0, 7, 11, 17]
    assert [checkpoints[s]["local"] for s in (0, 7, 11, 17)] == [False, False, True, True]  # keep_checkpoint_max=2
    calls = []

    def one_pass():
        calls.append(1)
        return programs.train_input_fn(repeat=False)()

    est.train(one_pass, steps=4)
    est.train(one_pass)  # the same function: its data starts over (6 batches), without calling it again
    assert est.get_variable_value("global_step") == 27 and len(calls) == 1
    est.close()


def test_evaluate_and_predict_reuse_the_graph_and_follow_the_latest_checkpoint(tmp_path):
    est = new_estimator(tmp_path)
    est.train(programs.train_input_fn(), steps=20)
    graph = est.elistimator.graph
    operations = len(graph.get_operations())
    first = est.evaluate(programs.eval_input_fn)
    at_10 = est.evaluate(programs.eval_input_fn, checkpoint_path=est.elistimator.checkpoints[10]["file"])
    assert at_10["global_step"] == 10 and at_10["loss"] != first["loss"]
    again = est.evaluate(programs.eval_input_fn)
    assert again == first and again["global_step"] == 20 and set(first) == {"accuracy", "loss", "global_step"}
    one_by_one = list(est.predict(programs.predict_input_fn))
    batches = list(est.predict(programs.predict_input_fn, predict_keys=["classes"], yield_single_examples=False))
    assert len(one_by_one) == 10 and set(one_by_one[0]) == {"classes", "probabilities"}
    assert [sorted(b) for b in batches] == [["classes"]] * 3
    np.testing.assert_array_equal(np.concatenate([b["classes"] for b in batches]), [p["classes"] for p in one_by_one])
    assert est.elistimator.graph is graph and len(graph.get_operations()) == operations
    with pytest.raises(ValueError, match=r"predict_keys \['logits'\] are not among the predictions"):
        list(est.predict(programs.predict_input_fn, predict_keys=["logits"]))
    est.close()


def test_a_new_estimator_on_the_model_dir_goes_on_from_the_latest_checkpoint(tmp_path):
    est = new_estimator(tmp_path)
    est.train(programs.train_input_fn(), steps=15)
    expected = list(est.predict(programs.predict_input_fn))
    metrics = est.evaluate(programs.eval_input_fn)
    est.close()
    again = new_estimator(tmp_path)
    assert again.latest_checkpoint().endswith("model-15")
    predicted = list(again.predict(programs.predict_input_fn))  # predict first: built from the recorded signature
    np.testing.assert_allclose(
        [p["probabilities"] for p in predicted], [p["probabilities"] for p in expected], rtol=1e-6
    )
    assert again.evaluate(programs.eval_input_fn) == metrics
    again.train(programs.train_input_fn(), steps=5)
    assert again.get_variable_value("global_step") == 20 and sorted(again.elistimator.checkpoints) == [0, 10, 15, 20]
    again.close()


# -- hooks ----------------------------------------------------------------------------------------------


class Recorder(tf.train.SessionRunHook):
    """Counts every moment and fetches the global step each run."""

    def __init__(self):
        self.calls = {"begin": 0, "after_create_session": 0, "before_run": 0, "after_run": 0, "end": 0}
        self.steps = []

    def begin(self):
        self.calls["begin"] += 1
        self._step = tf.train.get_global_step()

    def after_create_session(self, session, coord):
        self.calls["after_create_session"] += 1

    def before_run(self, run_context):
        self.calls["before_run"] += 1
        return tf.train.SessionRunArgs(self._step)

    def after_run(self, run_context, run_values):
        self.calls["after_run"] += 1
        self.steps.append(run_values.results)

    def end(self, session):
        self.calls["end"] += 1


class Saves(tf.train.CheckpointSaverListener):
    def __init__(self):
        self.saved = []

    def after_save(self, session, global_step_value):
        self.saved.append(global_step_value)


def test_hooks_run_in_every_mode_and_can_stop_training(tmp_path):
    training, evaluation, prediction, saves = Recorder(), Recorder(), Recorder(), Saves()
    est = new_estimator(tmp_path, save_checkpoints_steps=4)
    est.train(
        programs.train_input_fn(),
        hooks=[training, tf.train.StopAtStepHook(num_steps=9)],
        steps=100,
        saving_listeners=[saves],
    )
    # the listeners hear of the checkpoint saved when training starts, as tf.estimator's did (0, then every 4)
    assert est.get_variable_value("global_step") == 9 and saves.saved == [0, 4, 8, 9]
    assert training.calls == {"begin": 1, "after_create_session": 1, "before_run": 9, "after_run": 9, "end": 1}
    est.evaluate(programs.eval_input_fn, hooks=[evaluation], steps=2)
    assert evaluation.calls["before_run"] == 2 and evaluation.steps == [9, 9]
    list(est.predict(programs.predict_input_fn, hooks=[prediction]))
    # as in MonitoredSession: the run that finds the data exhausted had its before_run, but no after_run
    assert prediction.calls == {"begin": 1, "after_create_session": 1, "before_run": 4, "after_run": 3, "end": 1}
    logged = tf.train.LoggingTensorHook({"step": "global_step"}, every_n_iter=2)
    est.train(programs.train_input_fn(), hooks=[logged], steps=3)
    with pytest.raises(TypeError, match="hooks must hold tf.compat.v1.train.SessionRunHook objects, got str"):
        est.train(programs.train_input_fn(), hooks=["not a hook"], steps=1)
    est.close()


def test_hooks_returned_by_model_fn_run_in_their_mode(tmp_path):
    hooks = {mode: Recorder() for mode in (ModeKeys.TRAIN, ModeKeys.EVAL, ModeKeys.PREDICT)}

    def model_fn(features, labels, mode, params):
        spec = programs.model_fn(features, labels, mode, params)
        field = {
            ModeKeys.TRAIN: "training_hooks",
            ModeKeys.EVAL: "evaluation_hooks",
            ModeKeys.PREDICT: "prediction_hooks",
        }[mode]
        return spec._replace(**{field: [hooks[mode]]})

    est = new_estimator(tmp_path, model_fn)
    est.train(programs.train_input_fn(), steps=5)
    est.evaluate(programs.eval_input_fn)
    list(est.predict(programs.predict_input_fn))
    assert [hooks[m].calls["after_run"] for m in (ModeKeys.TRAIN, ModeKeys.EVAL, ModeKeys.PREDICT)] == [5, 3, 3]
    est.close()


# -- TensorBoard ----------------------------------------------------------------------------------------


def test_model_fn_summaries_and_eval_metrics_reach_tensorboard(tmp_path):
    est = new_estimator(tmp_path, save_summary_steps=5)
    est.train(programs.train_input_fn(), steps=20)
    metrics = est.evaluate(programs.eval_input_fn)
    named = est.evaluate(programs.eval_input_fn, name="holdout")
    est.close()
    assert [step for step, _ in scalars(tmp_path / "train", "cross_entropy")] == [5, 10, 15, 20]
    assert [step for step, _ in scalars(tmp_path / "train", "loss")] == [5, 10, 15, 20]
    assert scalars(tmp_path / "eval", "accuracy") == [(20, pytest.approx(metrics["accuracy"]))]
    assert scalars(tmp_path / "eval_holdout", "loss") == [(20, pytest.approx(named["loss"]))]


# -- train_and_evaluate -----------------------------------------------------------------------------------


def test_train_and_evaluate_validates_every_checkpoint_and_exports(tmp_path):
    est = new_estimator(tmp_path / "model", save_checkpoints_steps=10)
    exporter = tf_estimator.LatestExporter("latest", programs.serving_input_receiver_fn, exports_to_keep=2)
    metrics, exports = tf_estimator.train_and_evaluate(
        est,
        tf_estimator.TrainSpec(programs.train_input_fn(), max_steps=30),
        tf_estimator.EvalSpec(programs.eval_input_fn, steps=None, throttle_secs=0, exporters=[exporter]),
    )
    checkpoints = est.elistimator.checkpoints
    assert metrics["global_step"] == 30 and sorted(checkpoints) == [0, 10, 20, 30]
    # the step-0 checkpoint is not evaluated (tf.estimator skipped it: "model is not trained yet")
    assert checkpoints[0]["metrics"] == {}
    assert all(set(checkpoints[s]["metrics"]) == {"accuracy", "loss"} for s in (10, 20, 30))
    assert checkpoints[30]["metrics"]["loss"] == pytest.approx(metrics["loss"])
    # the last evaluation's exports, as tf.estimator 2.15 returned them (one LatestExporter: one path)
    assert len(exports) == 1 and len(list((tmp_path / "model" / "export" / "latest").iterdir())) == 2
    est.close()
    with pytest.raises(TypeError, match=r"train_and_evaluate takes \(estimator, TrainSpec, EvalSpec\)"):
        tf_estimator.train_and_evaluate(est, programs.train_input_fn(), programs.eval_input_fn)


def test_run_config_checks_and_a_bad_strategy_is_named(tmp_path):
    with pytest.raises(ValueError, match="save_checkpoints_steps and save_checkpoints_secs cannot both be set"):
        tf_estimator.RunConfig(save_checkpoints_steps=10, save_checkpoints_secs=10)
    assert tf_estimator.RunConfig().save_checkpoints_secs == 600
    assert tf_estimator.RunConfig(save_checkpoints_steps=5).save_checkpoints_secs is None
    config = tf_estimator.RunConfig(train_distribute="strategy")
    assert config.train_distribute == "strategy"
    with pytest.raises(TypeError, match="distribute must be a tf.distribute strategy"):
        tf_estimator.Estimator(programs.model_fn, str(tmp_path), config=config, tracking=False)
    with pytest.raises(ValueError, match="model_dir .* and RunConfig.model_dir .* differ"):
        tf_estimator.Estimator(
            programs.model_fn, str(tmp_path / "a"), config=tf_estimator.RunConfig(model_dir=str(tmp_path / "b"))
        )
