"""A program built on session-run hooks: LoggingTensorHook, StopAtStepHook, a hook reading the global step in
before_run, a hook that stops training at a loss, an evaluation hook, and saving listeners."""

from common import Timer, load, mnist_input_fns, model_dir, report, step_clock

tf, tf_estimator = load()


def model_fn(features, labels, mode):
    hidden = tf.layers.dense(features["image"], 128, activation=tf.nn.relu)
    logits = tf.layers.dense(hidden, 10)
    classes = tf.argmax(logits, 1, name="classes")
    if mode == tf_estimator.ModeKeys.PREDICT:
        return tf_estimator.EstimatorSpec(mode, predictions={"classes": classes})
    loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
    tf.identity(loss, name="loss_value")
    if mode == tf_estimator.ModeKeys.EVAL:
        return tf_estimator.EstimatorSpec(
            mode, loss=loss, eval_metric_ops={"accuracy": tf.metrics.accuracy(labels, classes)}
        )
    train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=tf.train.get_global_step())
    return tf_estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)


class GlobalStepWatcher(tf.train.SessionRunHook):
    """Reads the global step in before_run, as many hooks of the time did."""

    def begin(self):
        self.seen = []

    def before_run(self, run_context):
        return tf.train.SessionRunArgs(tf.train.get_global_step())

    def after_run(self, run_context, run_values):
        self.seen.append(int(run_values.results))


class StopAtLoss(tf.train.SessionRunHook):
    def __init__(self, threshold):
        self.threshold = threshold

    def before_run(self, run_context):
        return tf.train.SessionRunArgs(tf.get_default_graph().get_tensor_by_name("loss_value:0"))

    def after_run(self, run_context, run_values):
        if run_values.results < self.threshold:
            run_context.request_stop()


class Saves(tf.train.CheckpointSaverListener):
    def begin(self):
        self.steps = []

    def after_save(self, session, global_step_value):
        self.steps.append(int(global_step_value))


def main():
    train_input_fn, eval_input_fn = mnist_input_fns(tf, 32)

    config = tf_estimator.RunConfig(save_checkpoints_steps=500, log_step_count_steps=200)
    estimator = tf_estimator.Estimator(model_fn, model_dir=model_dir("hooks"), config=config)
    clock, watcher, saves = step_clock(tf), GlobalStepWatcher(), Saves()
    hooks = [
        tf.train.LoggingTensorHook({"loss": "loss_value"}, every_n_iter=250),
        tf.train.StopAtStepHook(last_step=1500),
        watcher,
        StopAtLoss(0.0),
        clock,
    ]
    with Timer() as first:
        estimator.train(train_input_fn, hooks=hooks, saving_listeners=[saves])
    counted = step_clock(tf)
    metrics = estimator.evaluate(eval_input_fn, hooks=[counted])
    report("hooks_program", metrics, clock.rate(), first.seconds, saves=saves.steps, steps_seen=watcher.seen[-1])


if __name__ == "__main__":
    main()
