"""A character LSTM (the shape of the TF 1.x RNN tutorials): characters of number words embedded, an
LSTMCell through dynamic_rnn, the last output classified; train, evaluate, predict."""

import numpy as np
from common import Timer, load, model_dir, report, step_clock

tf, tf_estimator = load()
ALPHABET, LENGTH = "abcdefghijklmnopqrstuvwxyz", 24


def words(n, seed):
    rng = np.random.RandomState(seed)
    chars = rng.randint(1, len(ALPHABET) + 1, (n, LENGTH)).astype(np.int32)
    length = rng.randint(5, LENGTH + 1, n).astype(np.int32)
    chars[np.arange(LENGTH)[None, :] >= length[:, None]] = 0
    label = (chars[np.arange(n), length - 1] % 2).astype(np.int32)  # the parity of the last character
    return {"chars": chars, "length": length}, label


def model_fn(features, labels, mode, params):
    embeddings = tf.get_variable("embeddings", [len(ALPHABET) + 1, 16])
    embedded = tf.nn.embedding_lookup(embeddings, features["chars"])
    cell = tf.nn.rnn_cell.LSTMCell(params["units"])
    outputs, state = tf.nn.dynamic_rnn(cell, embedded, sequence_length=features["length"], dtype=tf.float32)
    logits = tf.layers.dense(state.h, 2)
    classes = tf.argmax(logits, 1)
    if mode == tf_estimator.ModeKeys.PREDICT:
        return tf_estimator.EstimatorSpec(mode, predictions={"classes": classes})
    loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
    if mode == tf_estimator.ModeKeys.EVAL:
        return tf_estimator.EstimatorSpec(
            mode, loss=loss, eval_metric_ops={"accuracy": tf.metrics.accuracy(labels, classes)}
        )
    train_op = tf.train.AdamOptimizer(0.01).minimize(loss, global_step=tf.train.get_global_step())
    return tf_estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)


def main():
    train, train_y = words(3000, 0)
    test, test_y = words(600, 1)

    def train_input_fn():
        return tf.data.Dataset.from_tensor_slices((train, train_y)).shuffle(3000).repeat().batch(32)

    def eval_input_fn():
        return tf.data.Dataset.from_tensor_slices((test, test_y)).batch(100)

    estimator = tf_estimator.Estimator(model_fn, model_dir=model_dir("lstm"), params={"units": 64})
    clock = step_clock(tf)
    with Timer() as first:
        estimator.train(train_input_fn, steps=400, hooks=[clock])
    metrics = estimator.evaluate(eval_input_fn)
    predicted = sum(1 for _ in estimator.predict(eval_input_fn))
    report("char_lstm", metrics, clock.rate(), first.seconds, predicted=predicted)


if __name__ == "__main__":
    main()
