"""Warm start and export (the transfer pattern of the time): train a classifier, warm-start a second one
from its model_dir (WarmStartSettings on the hidden layer), fine-tune it, export both, serve the export."""

import numpy as np
from common import Timer, load, mnist, mnist_input_fns, model_dir, report, step_clock

tf, tf_estimator = load()


def model_fn(features, labels, mode, params):
    hidden = tf.layers.dense(features["image"], 256, activation=tf.nn.relu, name="hidden")
    logits = tf.layers.dense(hidden, 10, name="output")
    classes = tf.argmax(logits, 1)
    if mode == tf_estimator.ModeKeys.PREDICT:
        return tf_estimator.EstimatorSpec(mode, predictions={"classes": classes, "logits": logits})
    loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
    if mode == tf_estimator.ModeKeys.EVAL:
        return tf_estimator.EstimatorSpec(
            mode, loss=loss, eval_metric_ops={"accuracy": tf.metrics.accuracy(labels, classes)}
        )
    train_op = tf.train.GradientDescentOptimizer(params["learning_rate"]).minimize(loss, tf.train.get_global_step())
    return tf_estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)


def main():
    images, labels = mnist()

    train_input_fn, eval_input_fn = mnist_input_fns(tf, 50)

    def serving_input_receiver_fn():
        image = tf.placeholder(tf.float32, [None, 784], name="image")
        return tf_estimator.export.ServingInputReceiver({"image": image}, {"image": image})

    source = tf_estimator.Estimator(model_fn, model_dir=model_dir("source"), params={"learning_rate": 0.1})
    clock = step_clock(tf)
    with Timer() as first:
        source.train(train_input_fn, steps=600, hooks=[clock])
    source_metrics = source.evaluate(eval_input_fn)
    settings = tf_estimator.WarmStartSettings(ckpt_to_initialize_from=source.model_dir, vars_to_warm_start="hidden.*")
    tuned = tf_estimator.Estimator(
        model_fn, model_dir=model_dir("tuned"), params={"learning_rate": 0.05}, warm_start_from=settings
    )
    tuned.train(train_input_fn, steps=200)
    metrics = tuned.evaluate(eval_input_fn)
    exported = tuned.export_saved_model(model_dir("export"), serving_input_receiver_fn).decode()
    with tf.Graph().as_default(), tf.Session() as session:
        meta = tf.saved_model.loader.load(session, ["serve"], exported)
        signature = meta.signature_def["serving_default"]
        served = session.run(signature.outputs["classes"].name, {signature.inputs["image"].name: images[8000:8100]})
    predicted = np.array(
        [
            p["classes"]
            for p in tuned.predict(lambda: tf.data.Dataset.from_tensor_slices({"image": images[8000:8100]}).batch(100))
        ]
    )
    report(
        "warm_start_export",
        metrics,
        clock.rate(),
        first.seconds,
        source_accuracy=float(source_metrics["accuracy"]),
        served_matches_predict=bool((served == predicted).all()),
        hidden_warm_started=bool(
            np.allclose(tuned.get_variable_value("hidden/kernel"), source.get_variable_value("hidden/kernel"), atol=1.0)
        ),
    )


if __name__ == "__main__":
    main()
