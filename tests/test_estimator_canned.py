"""Issue 27, item 7: the canned estimators on tf.compat.v1.feature_column, as tf.estimator 2.15 had them.

The metric names, prediction keys, export signatures and variable names were observed on the real
tf.estimator (TensorFlow 2.15.1 + tensorflow-estimator 2.15.0): ``tests/estimator_parity/real_observed.json``
under the behaviour named in the comment (``behaviours_canned.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from elistimator_tracking import estimator as tf_estimator
from elistimator_tracking._tf import tf

REAL = json.loads((Path(__file__).parent / "estimator_parity" / "real_observed.json").read_text())
fc = tf.feature_column


def data(n=96, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.randn(n, 2).astype(np.float32)
    colour = np.array(["red", "green", "blue"])[rng.randint(0, 3, n)]
    return {"x": x, "colour": colour}, ((x[:, 0] + (colour == "red")) > 0.3).astype(np.int64)


def input_fn(n=96, seed=0, repeat=False, labels=lambda y: y):
    def fn():
        x, y = data(n, seed)
        dataset = tf.data.Dataset.from_tensor_slices((x, labels(y)))
        return (dataset.repeat() if repeat else dataset).batch(16)

    return fn


def columns():
    return fc.numeric_column("x", shape=[2]), fc.categorical_column_with_vocabulary_list(
        "colour", ["red", "green", "blue"]
    )


def signatures(est, tmp_path):
    spec = fc.make_parse_example_spec(list(columns()))
    path = est.export_saved_model(
        str(tmp_path / "export"), tf_estimator.export.build_parsing_serving_input_receiver_fn(spec)
    )
    with tf.Graph().as_default(), tf.Session() as session:
        meta = tf.saved_model.loader.load(session, ["serve"], path)
    return {name: sorted(meta.signature_def[name].outputs) for name in sorted(meta.signature_def)}, path


def observed(est, tmp_path, labels=lambda y: y):
    est.train(input_fn(repeat=True, labels=labels), steps=10)
    metrics = est.evaluate(input_fn(seed=1, labels=labels))
    prediction = next(est.predict(input_fn(seed=2, labels=labels)))
    return [sorted(metrics), sorted(prediction), signatures(est, tmp_path)[0]]


def same(y):
    return y


def real_valued(y):
    return y.astype(np.float32)


def indicator_columns():
    x, colour = columns()
    return [x, fc.indicator_column(colour)]


@pytest.mark.parametrize(
    "behaviour, make, labels",
    [
        ("dnn_classifier_binary", lambda d: tf_estimator.DNNClassifier([4], indicator_columns(), d), same),
        (
            "dnn_classifier_three_classes",
            lambda d: tf_estimator.DNNClassifier([4], indicator_columns(), d, n_classes=3),
            lambda y: y + (y > 0),
        ),
        ("dnn_regressor", lambda d: tf_estimator.DNNRegressor([4], indicator_columns(), d), real_valued),
        ("linear_classifier", lambda d: tf_estimator.LinearClassifier(list(columns()), d), same),
        ("linear_regressor", lambda d: tf_estimator.LinearRegressor(list(columns()), d), real_valued),
        (
            "dnn_linear_combined_classifier",
            lambda d: tf_estimator.DNNLinearCombinedClassifier(
                d, linear_feature_columns=[columns()[1]], dnn_feature_columns=[columns()[0]], dnn_hidden_units=[4]
            ),
            same,
        ),
        (
            "dnn_linear_combined_regressor",
            lambda d: tf_estimator.DNNLinearCombinedRegressor(
                d, linear_feature_columns=[columns()[1]], dnn_feature_columns=[columns()[0]], dnn_hidden_units=[4]
            ),
            real_valued,
        ),
    ],
)
def test_metric_names_prediction_keys_and_signatures_are_tf_estimators(behaviour, make, labels, tmp_path):
    est = make(str(tmp_path / "model"))
    assert observed(est, tmp_path, labels) == REAL[behaviour]["value"]
    est.close()


def test_a_dnn_classifier_learns_is_tracked_and_serves(tmp_path):
    est = tf_estimator.DNNClassifier(
        hidden_units=[8],
        feature_columns=indicator_columns(),
        model_dir=str(tmp_path / "model"),
        optimizer=lambda: tf.train.AdamOptimizer(0.05),
        label_vocabulary=["no", "yes"],
        config=tf_estimator.RunConfig(save_checkpoints_steps=100),
    )
    names = lambda y: np.array(["no", "yes"])[y]  # noqa: E731
    metrics, _ = tf_estimator.train_and_evaluate(
        est,
        tf_estimator.TrainSpec(input_fn(n=256, repeat=True, labels=names), max_steps=200),
        tf_estimator.EvalSpec(input_fn(n=256, seed=1, labels=names), steps=None, throttle_secs=0),
    )
    assert metrics["accuracy"] > 0.8 and metrics["auc"] > 0.8  # real: canned_accuracy_learns true
    assert sorted(v for v in est.get_variable_names() if "Adam" not in v and "beta" not in v) == [
        "dnn/hiddenlayer_0/bias",  # real: canned_variable_names (the names tf.estimator's checkpoints hold)
        "dnn/hiddenlayer_0/kernel",
        "dnn/logits/bias",
        "dnn/logits/kernel",
        "global_step",
    ]
    prediction = next(est.predict(input_fn(seed=2)))
    assert prediction["classes"][0] in (b"no", b"yes") and prediction["class_ids"].dtype == np.int64
    found, path = signatures(est, tmp_path)
    run_id = est.elistimator.run_id
    est.close()
    client = MlflowClient()
    run = client.get_run(run_id)
    assert {"validation/accuracy", "validation/auc", "validation/label/mean", "train/loss"} <= set(run.data.metrics)
    assert run.info.experiment_id == client.get_experiment_by_name("Default").experiment_id  # none named
    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                "x": tf.train.Feature(float_list=tf.train.FloatList(value=[2.0, 0.0])),
                "colour": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"red"])),
            }
        )
    )
    with tf.Graph().as_default(), tf.Session() as session:
        meta = tf.saved_model.loader.load(session, ["serve"], path)
        signature = meta.signature_def["serving_default"]
        classes, scores = session.run(
            [signature.outputs["classes"].name, signature.outputs["scores"].name],
            {signature.inputs["inputs"].name: [example.SerializeToString()]},
        )
    assert classes.tolist() == [[b"no", b"yes"]] and scores[0][1] > 0.5
