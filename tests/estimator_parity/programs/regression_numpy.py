"""A regression with tf.estimator.inputs.numpy_input_fn (the TF 1.x "input functions" guide's shape): a small
DNN regressor model_fn on numpy arrays, trained for epochs, evaluated, predicted."""

import numpy as np
from common import Timer, load, model_dir, report, step_clock

tf, tf_estimator = load()


def model_fn(features, labels, mode):
    net = tf.layers.dense(features["x"], 32, activation=tf.nn.relu)
    net = tf.layers.dense(net, 32, activation=tf.nn.relu)
    prediction = tf.squeeze(tf.layers.dense(net, 1), 1)
    if mode == tf_estimator.ModeKeys.PREDICT:
        return tf_estimator.EstimatorSpec(mode, predictions={"y": prediction})
    loss = tf.losses.mean_squared_error(labels, prediction)
    if mode == tf_estimator.ModeKeys.EVAL:
        rmse = tf.metrics.root_mean_squared_error(labels, prediction)
        return tf_estimator.EstimatorSpec(mode, loss=loss, eval_metric_ops={"rmse": rmse})
    train_op = tf.train.AdamOptimizer(0.01).minimize(loss, global_step=tf.train.get_global_step())
    return tf_estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)


def main():
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, (4000, 8)).astype(np.float32)
    y = (np.sin(3 * x[:, 0]) + x[:, 1] * x[:, 2] + 0.1 * rng.randn(4000)).astype(np.float32)
    train = tf_estimator.inputs.numpy_input_fn({"x": x[:3200]}, y[:3200], batch_size=32, num_epochs=10, shuffle=True)
    test = tf_estimator.inputs.numpy_input_fn({"x": x[3200:]}, y[3200:], batch_size=32, num_epochs=1, shuffle=False)
    estimator = tf_estimator.Estimator(model_fn, model_dir=model_dir("regression"))
    clock = step_clock(tf)
    with Timer() as first:
        estimator.train(train, hooks=[clock])
    metrics = estimator.evaluate(test)
    predictions = [p["y"] for p in estimator.predict(test)]
    report("regression_numpy", metrics, clock.rate(), first.seconds, predictions=len(predictions))


if __name__ == "__main__":
    main()
