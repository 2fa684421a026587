"""Quickstart: train, validate, evaluate and predict on scikit-learn's bundled digits.

No download needed (the 1,797 8x8 digit images ship with scikit-learn). Written the
TF1 way, as a model function with tf.layers, tf.losses and tf.metrics.

    python examples/quickstart.py --epochs 10 --model-dir runs/quickstart
"""

import argparse
import time
from pathlib import Path

import numpy as np

from elistimator_tracking import Elistimator, EvaluationSpec, PredictSpec, TrainSpec
import tensorflow.compat.v1 as tf  # after elistimator_tracking: it sets TensorFlow's environment


def digits_model_fn(features, is_training, params):
    hidden = tf.layers.dense(features["images"], params["hidden_units"], activation=tf.nn.relu)
    hidden = tf.layers.dropout(hidden, rate=params["dropout"], training=is_training)
    logits = tf.layers.dense(hidden, 10)
    classes = tf.argmax(logits, axis=1, output_type=tf.int32)
    loss = tf.losses.sparse_softmax_cross_entropy(labels=features["labels"], logits=logits)
    train_op = tf.train.AdamOptimizer(params["learning_rate"]).minimize(loss, global_step=tf.train.get_global_step())
    metrics = {"accuracy": tf.metrics.accuracy(labels=features["labels"], predictions=classes)}
    return (TrainSpec(loss=loss, train_op=train_op),
            EvaluationSpec(loss=loss, eval_metric_ops=metrics),
            PredictSpec(output={"classes": classes, "probabilities": tf.nn.softmax(logits)}))


def digits(seed: int = 0):
    from sklearn.datasets import load_digits
    data = load_digits()
    images = (data.images.reshape(len(data.images), 64) / 16.0).astype(np.float32)
    labels = data.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(labels))
    train, test = order[:1500], order[1500:]
    return (images[train], labels[train]), (images[test], labels[test])


def input_fn(images, labels, batch_size, shuffle=False):
    def make():
        dataset = tf.data.Dataset.from_tensor_slices({"images": images, "labels": labels})
        return (dataset.shuffle(len(labels)) if shuffle else dataset).batch(batch_size)
    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--model-dir", default=f"runs/quickstart-{time.strftime('%Y%m%d-%H%M%S')}")
    args = parser.parse_args()
    params = {"hidden_units": 64, "dropout": 0.2, "learning_rate": 0.01, "batch_size": 32}
    (train_x, train_y), (test_x, test_y) = digits()

    estimator = Elistimator(digits_model_fn, model_dir=args.model_dir, params=params)
    estimator.setup(train_input_fn=input_fn(train_x, train_y, params["batch_size"], shuffle=True),
                    validation_input_fn=input_fn(test_x, test_y, params["batch_size"]))
    for _ in range(args.epochs):
        estimator.train().validate()

    evaluation = estimator.evaluate(input_fn(test_x, test_y, 100))
    first = estimator.predict(images=test_x[:5])
    print(f"evaluation: {evaluation}")
    print(f"predicted {first['classes'].tolist()} for labels {test_y[:5].tolist()}")
    print(f"\nModel directory: {Path(args.model_dir).resolve()}")
    print(f"TensorBoard:     tensorboard --logdir {Path(args.model_dir).resolve()}")
    estimator.close()


if __name__ == "__main__":
    main()
