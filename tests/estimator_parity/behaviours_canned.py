"""Behaviours of the canned estimators on tf.compat.v1.feature_column (the premade-estimator guide's)."""

from __future__ import annotations

import numpy as np
from behaviours import behaviour


def features(n=48, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.randn(n, 2).astype(np.float32)
    colour = np.array(["red", "green", "blue"])[rng.randint(0, 3, n)]
    label = ((x[:, 0] + (colour == "red")) > 0.3).astype(np.int64)
    return {"x": x, "colour": colour}, label


def input_fn(tf, n=48, seed=0, labels=lambda y: y, repeat=False):
    def fn():
        x, y = features(n, seed)
        dataset = tf.data.Dataset.from_tensor_slices((x, labels(y)))
        return (dataset.repeat() if repeat else dataset).batch(16)

    return fn


def columns(tf):
    fc = tf.feature_column
    colour = fc.categorical_column_with_vocabulary_list("colour", ["red", "green", "blue"])
    return fc.numeric_column("x", shape=[2]), colour


def dnn_columns(tf):
    x, colour = columns(tf)
    return [x, tf.feature_column.indicator_column(colour)]


def trained(tf, estimator, label_fn=lambda y: y):
    estimator.train(input_fn(tf, labels=label_fn, repeat=True), steps=10)
    metrics = estimator.evaluate(input_fn(tf, seed=1, labels=label_fn))
    prediction = next(estimator.predict(input_fn(tf, seed=2, labels=label_fn)))
    return sorted(metrics), sorted(prediction)


def signatures(tf, E, estimator, new_dir):
    x, colour = columns(tf)
    spec = tf.feature_column.make_parse_example_spec([x, colour])
    path = estimator.export_saved_model(new_dir(), E.export.build_parsing_serving_input_receiver_fn(spec))
    with tf.Graph().as_default(), tf.Session() as session:
        meta = tf.saved_model.loader.load(session, ["serve"], path)
    return {name: sorted(meta.signature_def[name].outputs) for name in sorted(meta.signature_def)}


@behaviour
def dnn_classifier_binary(tf, E, new_dir):
    est = E.DNNClassifier(hidden_units=[4], feature_columns=dnn_columns(tf), model_dir=new_dir())
    return [*trained(tf, est), signatures(tf, E, est, new_dir)]


@behaviour
def dnn_classifier_three_classes(tf, E, new_dir):
    est = E.DNNClassifier(hidden_units=[4], feature_columns=dnn_columns(tf), n_classes=3, model_dir=new_dir())
    return [*trained(tf, est, lambda y: y + (y > 0)), signatures(tf, E, est, new_dir)]


@behaviour
def dnn_classifier_label_vocabulary(tf, E, new_dir):
    est = E.DNNClassifier(
        hidden_units=[4], feature_columns=dnn_columns(tf), label_vocabulary=["no", "yes"], model_dir=new_dir()
    )
    est.train(input_fn(tf, labels=lambda y: np.array(["no", "yes"])[y], repeat=True), steps=5)
    prediction = next(est.predict(input_fn(tf, seed=2)))
    chosen = prediction["classes"].tolist()
    return [
        len(chosen),
        chosen[0] in (b"no", b"yes"),
        prediction["all_classes"].tolist(),
        prediction["class_ids"].dtype.name,
    ]


@behaviour
def dnn_regressor(tf, E, new_dir):
    est = E.DNNRegressor(hidden_units=[4], feature_columns=dnn_columns(tf), model_dir=new_dir())
    return [*trained(tf, est, lambda y: y.astype(np.float32)), signatures(tf, E, est, new_dir)]


@behaviour
def linear_classifier(tf, E, new_dir):
    est = E.LinearClassifier(feature_columns=list(columns(tf)), model_dir=new_dir())
    return [*trained(tf, est), signatures(tf, E, est, new_dir)]


@behaviour
def linear_regressor(tf, E, new_dir):
    est = E.LinearRegressor(feature_columns=list(columns(tf)), model_dir=new_dir())
    return [*trained(tf, est, lambda y: y.astype(np.float32)), signatures(tf, E, est, new_dir)]


@behaviour
def dnn_linear_combined_classifier(tf, E, new_dir):
    x, colour = columns(tf)
    est = E.DNNLinearCombinedClassifier(
        linear_feature_columns=[colour], dnn_feature_columns=[x], dnn_hidden_units=[4], model_dir=new_dir()
    )
    return [*trained(tf, est), signatures(tf, E, est, new_dir)]


@behaviour
def dnn_linear_combined_regressor(tf, E, new_dir):
    x, colour = columns(tf)
    est = E.DNNLinearCombinedRegressor(
        linear_feature_columns=[colour], dnn_feature_columns=[x], dnn_hidden_units=[4], model_dir=new_dir()
    )
    return [*trained(tf, est, lambda y: y.astype(np.float32)), signatures(tf, E, est, new_dir)]


@behaviour
def canned_variable_names(tf, E, new_dir):
    est = E.DNNClassifier(hidden_units=[4], feature_columns=dnn_columns(tf), model_dir=new_dir())
    est.train(input_fn(tf, repeat=True), steps=1)
    return sorted(name for name in est.get_variable_names() if "Adagrad" not in name)


@behaviour
def canned_accuracy_learns(tf, E, new_dir):
    est = E.DNNClassifier(
        hidden_units=[8],
        feature_columns=dnn_columns(tf),
        model_dir=new_dir(),
        optimizer=lambda: tf.train.AdamOptimizer(0.05),
    )
    est.train(input_fn(tf, n=256, repeat=True), steps=200)
    return bool(est.evaluate(input_fn(tf, n=256, seed=1))["accuracy"] > 0.8)
