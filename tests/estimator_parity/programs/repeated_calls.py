"""Repeated calls on one Estimator (a notebook's loop): 10 evaluate(), 10 predict() over the evaluation
images, 5 train(steps=100) with the same input_fn, after a first train(steps=100)."""

from common import Timer, load, mnist, mnist_input_fns, model_dir, report, step_clock

tf, tf_estimator = load()


def model_fn(features, labels, mode):
    hidden = tf.layers.dense(features["image"], 128, activation=tf.nn.relu)
    logits = tf.layers.dense(hidden, 10)
    classes = tf.argmax(logits, 1)
    if mode == tf_estimator.ModeKeys.PREDICT:
        return tf_estimator.EstimatorSpec(mode, predictions={"classes": classes})
    loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
    if mode == tf_estimator.ModeKeys.EVAL:
        return tf_estimator.EstimatorSpec(
            mode, loss=loss, eval_metric_ops={"accuracy": tf.metrics.accuracy(labels, classes)}
        )
    train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=tf.train.get_global_step())
    return tf_estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)


def main():
    images, labels = mnist()

    train_input_fn, eval_input_fn = mnist_input_fns(tf, 32)

    def predict_input_fn():
        return tf.data.Dataset.from_tensor_slices({"image": images[8000:9000]}).batch(500)

    estimator = tf_estimator.Estimator(model_fn, model_dir=model_dir("repeated"))
    clock = step_clock(tf)
    with Timer() as first:
        estimator.train(train_input_fn, steps=100, hooks=[clock])
    with Timer() as evaluations:
        for _ in range(10):
            metrics = estimator.evaluate(eval_input_fn)
    with Timer() as predictions:
        for _ in range(10):
            predicted = sum(1 for _ in estimator.predict(predict_input_fn))
    with Timer() as trainings:
        for _ in range(5):
            estimator.train(train_input_fn, steps=100)
    report(
        "repeated_calls",
        metrics,
        clock.rate(),
        first.seconds,
        evaluate_10=evaluations.seconds,
        predict_10=predictions.seconds,
        train_5x100=trainings.seconds,
        predicted=predicted,
    )


if __name__ == "__main__":
    main()
