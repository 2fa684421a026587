"""The official r1 MNIST estimator (tensorflow/models official/r1/mnist): a Keras CNN built inside model_fn,
Adam, train then evaluate, then export_savedmodel."""

from common import Timer, load, mnist, model_dir, report, step_clock

tf, tf_estimator = load()
STEPS, BATCH = 300, 100


def create_model():
    layers = tf.keras.layers
    return tf.keras.Sequential(
        [
            layers.Reshape(target_shape=(28, 28, 1), input_shape=(784,)),
            layers.Conv2D(32, 5, padding="same", activation=tf.nn.relu),
            layers.MaxPooling2D((2, 2), (2, 2), padding="same"),
            layers.Conv2D(64, 5, padding="same", activation=tf.nn.relu),
            layers.MaxPooling2D((2, 2), (2, 2), padding="same"),
            layers.Flatten(),
            layers.Dense(1024, activation=tf.nn.relu),
            layers.Dropout(0.4),
            layers.Dense(10),
        ]
    )


def model_fn(features, labels, mode, params):
    model = create_model()
    image = features["image"] if isinstance(features, dict) else features
    if mode == tf_estimator.ModeKeys.PREDICT:
        logits = model(image, training=False)
        predictions = {"classes": tf.argmax(logits, axis=1), "probabilities": tf.nn.softmax(logits)}
        return tf_estimator.EstimatorSpec(
            mode, predictions=predictions, export_outputs={"classify": tf_estimator.export.PredictOutput(predictions)}
        )
    if mode == tf_estimator.ModeKeys.TRAIN:
        optimizer = tf.train.AdamOptimizer(learning_rate=1e-4)
        logits = model(image, training=True)
        loss = tf.losses.sparse_softmax_cross_entropy(labels=labels, logits=logits)
        accuracy = tf.metrics.accuracy(labels=labels, predictions=tf.argmax(logits, axis=1))
        tf.identity(accuracy[1], name="train_accuracy")
        tf.summary.scalar("train_accuracy", accuracy[1])
        return tf_estimator.EstimatorSpec(
            mode, loss=loss, train_op=optimizer.minimize(loss, tf.train.get_or_create_global_step())
        )
    logits = model(image, training=False)
    loss = tf.losses.sparse_softmax_cross_entropy(labels=labels, logits=logits)
    return tf_estimator.EstimatorSpec(
        mode,
        loss=loss,
        eval_metric_ops={"accuracy": tf.metrics.accuracy(labels=labels, predictions=tf.argmax(logits, axis=1))},
    )


def main():
    images, labels = mnist()
    train_x, train_y, test_x, test_y = images[:8000], labels[:8000], images[8000:], labels[8000:]

    def train_input_fn():
        return tf.data.Dataset.from_tensor_slices((train_x, train_y)).shuffle(8000).batch(BATCH).repeat()

    def eval_input_fn():
        return tf.data.Dataset.from_tensor_slices((test_x, test_y)).batch(BATCH)

    classifier = tf_estimator.Estimator(
        model_fn=model_fn, model_dir=model_dir("mnist"), params={"data_format": "channels_last"}
    )
    clock = step_clock(tf)
    logging = tf.train.LoggingTensorHook(tensors={"train_accuracy": "train_accuracy"}, every_n_iter=100)
    with Timer() as first:
        classifier.train(input_fn=train_input_fn, steps=STEPS, hooks=[logging, clock])
    metrics = classifier.evaluate(input_fn=eval_input_fn)
    image = tf.placeholder(tf.float32, [None, 784])
    receiver = tf_estimator.export.build_raw_serving_input_receiver_fn({"image": image})
    classifier.export_savedmodel(model_dir("mnist-export"), receiver, strip_default_attrs=True)
    report("mnist_r1", metrics, clock.rate(), first.seconds)


if __name__ == "__main__":
    main()
