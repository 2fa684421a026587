"""A text CNN with train_and_evaluate and exporters (the shape of the TF 1.x text classification tutorials):
embedding, 1-D convolution, max pooling, a dense layer; a checkpoint and an evaluation every 100 steps,
a LatestExporter and a BestExporter."""

import numpy as np
from common import Timer, load, model_dir, report, step_clock

tf, tf_estimator = load()
VOCABULARY, LENGTH = 500, 40


def corpus(n, seed):
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, 2, n).astype(np.int32)
    tokens = rng.randint(2, VOCABULARY, (n, LENGTH))
    marker = np.where(labels[:, None] == 1, rng.randint(2, 50, (n, LENGTH)), rng.randint(450, VOCABULARY, (n, LENGTH)))
    mask = rng.rand(n, LENGTH) < 0.3
    return np.where(mask, marker, tokens).astype(np.int32), labels


def model_fn(features, labels, mode, params):
    embeddings = tf.get_variable("embeddings", [VOCABULARY, 32])
    embedded = tf.nn.embedding_lookup(embeddings, features["tokens"])
    conv = tf.layers.conv1d(embedded, filters=64, kernel_size=3, padding="same", activation=tf.nn.relu)
    pooled = tf.reduce_max(conv, axis=1)
    hidden = tf.layers.dense(pooled, 64, activation=tf.nn.relu)
    dropped = tf.layers.dropout(hidden, rate=0.2, training=mode == tf_estimator.ModeKeys.TRAIN)
    logits = tf.layers.dense(dropped, 2)
    classes = tf.argmax(logits, 1)
    if mode == tf_estimator.ModeKeys.PREDICT:
        return tf_estimator.EstimatorSpec(
            mode, predictions={"classes": classes, "probabilities": tf.nn.softmax(logits)}
        )
    loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
    if mode == tf_estimator.ModeKeys.EVAL:
        return tf_estimator.EstimatorSpec(
            mode, loss=loss, eval_metric_ops={"accuracy": tf.metrics.accuracy(labels, classes)}
        )
    train_op = tf.train.AdamOptimizer(params["learning_rate"]).minimize(loss, global_step=tf.train.get_global_step())
    return tf_estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)


def main():
    train_x, train_y = corpus(4000, 0)
    test_x, test_y = corpus(800, 1)

    def train_input_fn():
        return tf.data.Dataset.from_tensor_slices(({"tokens": train_x}, train_y)).shuffle(4000).repeat().batch(64)

    def eval_input_fn():
        return tf.data.Dataset.from_tensor_slices(({"tokens": test_x}, test_y)).batch(200)

    def serving_input_receiver_fn():
        tokens = tf.placeholder(tf.int32, [None, LENGTH], name="tokens")
        return tf_estimator.export.ServingInputReceiver({"tokens": tokens}, {"tokens": tokens})

    config = tf_estimator.RunConfig(save_checkpoints_steps=100, keep_checkpoint_max=3)
    estimator = tf_estimator.Estimator(
        model_fn, model_dir=model_dir("text"), config=config, params={"learning_rate": 0.003}
    )
    clock = step_clock(tf)
    exporters = [
        tf_estimator.LatestExporter("latest", serving_input_receiver_fn, exports_to_keep=2),
        tf_estimator.BestExporter(name="best", serving_input_receiver_fn=serving_input_receiver_fn, exports_to_keep=1),
    ]
    with Timer() as first:
        metrics, _ = tf_estimator.train_and_evaluate(
            estimator,
            tf_estimator.TrainSpec(train_input_fn, max_steps=400, hooks=[clock]),
            tf_estimator.EvalSpec(eval_input_fn, steps=None, exporters=exporters, throttle_secs=0),
        )
    report("text_cnn", metrics, clock.rate(), first.seconds)


if __name__ == "__main__":
    main()
