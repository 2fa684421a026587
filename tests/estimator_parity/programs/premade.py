"""The premade-estimator guide (tensorflow.org "Premade Estimators"): a DNNClassifier with two hidden layers
of 10 on feature columns of iris-shaped data; train 1000 steps, evaluate, predict three examples."""

from common import Timer, iris_like, load, model_dir, report, step_clock

tf, tf_estimator = load()


def input_fn(features, labels, training=True, batch_size=256):
    dataset = tf.data.Dataset.from_tensor_slices((dict(features), labels))
    if training:
        dataset = dataset.shuffle(1000).repeat()
    return dataset.batch(batch_size)


def main():
    train, train_y = iris_like(120)
    test, test_y = iris_like(30, seed=1)
    columns = [tf.feature_column.numeric_column(key=key) for key in train]
    classifier = tf_estimator.DNNClassifier(
        feature_columns=columns, hidden_units=[30, 10], n_classes=3, model_dir=model_dir("premade")
    )
    clock = step_clock(tf)
    with Timer() as first:
        classifier.train(input_fn=lambda: input_fn(train, train_y, training=True), steps=1000, hooks=[clock])
    metrics = classifier.evaluate(input_fn=lambda: input_fn(test, test_y, training=False))
    expected = {key: values[:3] for key, values in test.items()}
    predictions = classifier.predict(input_fn=lambda: tf.data.Dataset.from_tensor_slices(dict(expected)).batch(256))
    classes = [int(p["class_ids"][0]) for p in predictions]
    report("premade", metrics, clock.rate(), first.seconds, predicted=classes)


if __name__ == "__main__":
    main()
