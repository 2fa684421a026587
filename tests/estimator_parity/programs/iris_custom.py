"""The custom-estimator guide (tensorflow.org "Creating Custom Estimators"): feature columns into two hidden
layers of 10, Adagrad, train 1000 steps, evaluate, predict three examples."""

from common import Timer, iris_like, load, model_dir, report, step_clock

tf, tf_estimator = load()


def my_model(features, labels, mode, params):
    net = tf.feature_column.input_layer(features, params["feature_columns"])
    for units in params["hidden_units"]:
        net = tf.layers.dense(net, units=units, activation=tf.nn.relu)
    logits = tf.layers.dense(net, params["n_classes"], activation=None)
    predicted_classes = tf.argmax(logits, 1)
    if mode == tf_estimator.ModeKeys.PREDICT:
        predictions = {
            "class_ids": predicted_classes[:, tf.newaxis],
            "probabilities": tf.nn.softmax(logits),
            "logits": logits,
        }
        return tf_estimator.EstimatorSpec(mode, predictions=predictions)
    loss = tf.losses.sparse_softmax_cross_entropy(labels=labels, logits=logits)
    accuracy = tf.metrics.accuracy(labels=labels, predictions=predicted_classes, name="acc_op")
    metrics = {"accuracy": accuracy}
    tf.summary.scalar("accuracy", accuracy[1])
    if mode == tf_estimator.ModeKeys.EVAL:
        return tf_estimator.EstimatorSpec(mode, loss=loss, eval_metric_ops=metrics)
    optimizer = tf.train.AdagradOptimizer(learning_rate=0.1)
    train_op = optimizer.minimize(loss, global_step=tf.train.get_global_step())
    return tf_estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)


def train_input_fn(features, labels, batch_size):
    return tf.data.Dataset.from_tensor_slices((dict(features), labels)).shuffle(1000).repeat().batch(batch_size)


def eval_input_fn(features, labels, batch_size):
    inputs = dict(features) if labels is None else (dict(features), labels)
    return tf.data.Dataset.from_tensor_slices(inputs).batch(batch_size)


def main():
    train_x, train_y = iris_like(120)
    test_x, test_y = iris_like(30, seed=1)
    columns = [tf.feature_column.numeric_column(key=key) for key in train_x]
    classifier = tf_estimator.Estimator(
        model_fn=my_model,
        model_dir=model_dir("iris"),
        params={"feature_columns": columns, "hidden_units": [10, 10], "n_classes": 3},
    )
    clock = step_clock(tf)
    with Timer() as first:
        classifier.train(input_fn=lambda: train_input_fn(train_x, train_y, 100), steps=1000, hooks=[clock])
    metrics = classifier.evaluate(input_fn=lambda: eval_input_fn(test_x, test_y, 100))
    predict_x = {key: values[:3] for key, values in test_x.items()}
    predictions = list(classifier.predict(input_fn=lambda: eval_input_fn(predict_x, None, 100)))
    report("iris_custom", metrics, clock.rate(), first.seconds, predicted=[int(p["class_ids"][0]) for p in predictions])


if __name__ == "__main__":
    main()
