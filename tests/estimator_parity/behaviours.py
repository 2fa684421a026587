"""Behaviours of tf.estimator, restated from its own tests and from issue 27, run on either side.

Each behaviour is a function ``(tf, E, new_dir)`` returning what a user observes (JSON values); an
exception is recorded as its kind (``ValueError``, ``TypeError``, ...). ``run.py`` runs them on one
side and writes the observations; ``real_observed.json`` holds what the real tf.estimator 2.15 did.
Where a test of tensorflow/estimator is restated, its name is given (``estimator_test.py`` unless
said otherwise).
"""

from __future__ import annotations

import glob
import os
import shutil

import numpy as np

BEHAVIOURS = {}


def behaviour(fn):
    BEHAVIOURS[fn.__name__] = fn
    return fn


# -- shared model functions (tensorflow/estimator's test fixtures) ------------------------------


def make(tf, E):
    """The fixtures of estimator_test.py, built for this side's ``tf`` and estimator ``E``."""

    def dummy_input_fn():
        return ({"x": tf.constant([[1.0], [1.0]])}, tf.constant([[1.0], [1.0]]))

    def incrementer(features, labels, mode):  # model_fn_global_step_incrementer
        return E.EstimatorSpec(
            mode,
            predictions=features["x"],
            loss=tf.constant(1.0),
            train_op=tf.assign_add(tf.train.get_global_step(), 1),
        )

    def variable_fn(x, name="x", trainable=True):  # _make_model_fn(x) of test_warm_starts
        def model_fn(features, labels, mode):
            v = tf.get_variable(name, initializer=x, trainable=trainable)
            return E.EstimatorSpec(
                mode,
                predictions={"y": features["x"] * v},
                loss=tf.constant(1.0) + 0.0 * v,
                train_op=tf.assign_add(tf.train.get_global_step(), 1),
                eval_metric_ops={"x": tf.metrics.mean(v)},
            )

        return model_fn

    return dummy_input_fn, incrementer, variable_fn


def blobs(n=64, seed=0, dtype=np.float32):
    rng = np.random.RandomState(seed)
    x = rng.randn(n, 3).astype(dtype)
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int32)


def classifier_fn(tf, E):
    """A dense classifier with an accuracy metric (the shape of the iris custom-estimator guide)."""

    def model_fn(features, labels, mode, params):
        hidden = tf.layers.dense(features["x"], 8, activation=tf.nn.relu)
        logits = tf.layers.dense(hidden, 2)
        classes = tf.argmax(logits, 1)
        if mode == E.ModeKeys.PREDICT:
            return E.EstimatorSpec(mode, predictions={"classes": classes, "logits": logits})
        loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
        if mode == E.ModeKeys.EVAL:
            return E.EstimatorSpec(mode, loss=loss, eval_metric_ops={"accuracy": tf.metrics.accuracy(labels, classes)})
        optimizer = tf.train.GradientDescentOptimizer(params.get("learning_rate", 0.5))
        return E.EstimatorSpec(mode, loss=loss, train_op=optimizer.minimize(loss, tf.train.get_global_step()))

    return model_fn


def data_fn(tf, n=64, seed=0, repeat=False, dtype=np.float32, batch=16):
    def input_fn():
        x, y = blobs(n, seed, dtype)
        dataset = tf.data.Dataset.from_tensor_slices(({"x": x}, y))
        return (dataset.repeat() if repeat else dataset).batch(batch)

    return input_fn


def steps_of(path):
    return os.path.basename(path).rsplit("-", 1)[-1] if path else None


class Listener:
    def __new__(cls, tf):
        class Counting(tf.train.CheckpointSaverListener):
            def __init__(self):
                self.before, self.after, self.begun, self.ended = [], [], 0, 0

            def begin(self):
                self.begun += 1

            def before_save(self, session, step):
                self.before.append(int(step))

            def after_save(self, session, step):
                self.after.append(int(step))

            def end(self, session, step):
                self.ended += 1

        return Counting()


# -- the Estimator object ------------------------------------------------------------------------


@behaviour
def config_must_be_a_run_config(tf, E, new_dir):  # test_config_must_be_a_run_config
    _, incrementer, _ = make(tf, E)
    E.Estimator(incrementer, config="NotARunConfig")


@behaviour
def model_fn_must_be_provided(tf, E, new_dir):  # test_model_fn_must_be_provided
    E.Estimator(model_fn=None)


@behaviour
def property_accessors(tf, E, new_dir):  # test_property_accessors
    directory = new_dir()
    est = E.Estimator(metric_fn(tf, E), model_dir=directory, params={"a": 1})
    return [est.model_dir == directory, est.config.model_dir == directory, est.params]


@behaviour
def params_are_a_deepcopy(tf, E, new_dir):  # test_internal_params_is_a_deepcopy
    params = {"hidden": [1]}
    est = E.Estimator(metric_fn(tf, E), model_dir=new_dir(), params=params)
    params["hidden"].append(2)
    returned = est.params
    returned["new"] = 1
    return est.params


@behaviour
def different_model_dir_in_constructor_and_run_config(tf, E, new_dir):
    _, incrementer, _ = make(tf, E)
    E.Estimator(incrementer, model_dir=new_dir(), config=E.RunConfig(model_dir=new_dir()))


@behaviour
def model_dir_in_run_config(tf, E, new_dir):  # test_model_dir_in_run_config
    _, incrementer, _ = make(tf, E)
    directory = new_dir()
    return E.Estimator(incrementer, config=E.RunConfig(model_dir=directory)).model_dir == directory


@behaviour
def model_fn_args_must_include_features(tf, E, new_dir):
    dummy, _, _ = make(tf, E)

    def model_fn(labels, mode):
        return None

    E.Estimator(model_fn, model_dir=new_dir()).train(dummy, steps=1)


@behaviour
def not_known_model_fn_args(tf, E, new_dir):  # test_not_known_model_fn_args
    dummy, _, _ = make(tf, E)

    def model_fn(features, labels, something):
        return None

    E.Estimator(model_fn, model_dir=new_dir()).train(dummy, steps=1)


@behaviour
def model_fn_must_return_estimator_spec(tf, E, new_dir):  # test_model_fn_must_return_estimator_spec
    dummy, _, _ = make(tf, E)

    def model_fn(features, labels):
        return "NotGoodNotGood"

    E.Estimator(model_fn, model_dir=new_dir()).train(dummy, steps=1)


@behaviour
def warm_start_from_must_be_a_string_or_settings(tf, E, new_dir):
    _, incrementer, _ = make(tf, E)
    E.Estimator(incrementer, model_dir=new_dir(), warm_start_from=42)


# -- train ---------------------------------------------------------------------------------------


@behaviour
def steps0_raises_error(tf, E, new_dir):  # test_steps0_raises_error
    dummy, incrementer, _ = make(tf, E)
    E.Estimator(incrementer, model_dir=new_dir()).train(dummy, steps=0)


@behaviour
def max_steps_negative_raises_error(tf, E, new_dir):  # test_max_steps_negative_raises_error
    dummy, incrementer, _ = make(tf, E)
    E.Estimator(incrementer, model_dir=new_dir()).train(dummy, max_steps=-1)


@behaviour
def steps_and_max_steps_both(tf, E, new_dir):
    dummy, incrementer, _ = make(tf, E)
    E.Estimator(incrementer, model_dir=new_dir()).train(dummy, steps=1, max_steps=1)


@behaviour
def train_op_is_any_op(tf, E, new_dir):  # test_steps_and_saves_reloads
    dummy, incrementer, _ = make(tf, E)
    est = E.Estimator(incrementer, model_dir=new_dir())
    est.train(dummy, steps=5)
    first = int(est.get_variable_value("global_step"))
    est.train(dummy, steps=5)
    return [first, int(est.get_variable_value("global_step"))]


@behaviour
def train_op_is_a_tensor(tf, E, new_dir):
    dummy, _, _ = make(tf, E)

    def model_fn(features, labels, mode):
        w = tf.get_variable("w", initializer=1.0)
        loss = tf.square(w - 3.0)
        train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss, tf.train.get_global_step())
        with tf.control_dependencies([train_op]):
            counted = tf.identity(loss)  # a tensor, not an op
        return E.EstimatorSpec(mode, loss=loss, train_op=counted)

    est = E.Estimator(model_fn, model_dir=new_dir())
    est.train(dummy, steps=3)
    return int(est.get_variable_value("global_step"))


@behaviour
def max_steps(tf, E, new_dir):  # test_max_step
    dummy, incrementer, _ = make(tf, E)
    est = E.Estimator(incrementer, model_dir=new_dir())
    est.train(dummy, max_steps=5)
    est.train(dummy, max_steps=5)
    return int(est.get_variable_value("global_step"))


@behaviour
def latest_checkpoint(tf, E, new_dir):  # test_latest_checkpoint
    dummy, incrementer, _ = make(tf, E)
    est = E.Estimator(incrementer, model_dir=new_dir())
    before = est.latest_checkpoint()
    est.train(dummy, steps=5)
    latest = est.latest_checkpoint()
    return [before, latest.startswith(est.model_dir), steps_of(latest)]


@behaviour
def tf_latest_checkpoint_reads_the_model_dir(tf, E, new_dir):  # issue 27, item 4
    dummy, incrementer, _ = make(tf, E)
    est = E.Estimator(incrementer, model_dir=new_dir(), config=E.RunConfig(keep_checkpoint_max=2))
    est.train(dummy, steps=5)
    est.train(dummy, steps=5)
    state = tf.train.get_checkpoint_state(est.model_dir)
    latest = tf.train.latest_checkpoint(est.model_dir)
    return [
        steps_of(latest),
        latest == est.latest_checkpoint(),
        [steps_of(p) for p in state.all_model_checkpoint_paths],
        int(tf.train.load_variable(latest, "global_step")),
    ]


@behaviour
def checkpoint_contains_relative_paths(tf, E, new_dir):  # test_checkpoint_contains_relative_paths
    dummy, incrementer, _ = make(tf, E)
    directory = new_dir()
    E.Estimator(incrementer, model_dir=directory).train(dummy, steps=5)
    with open(os.path.join(directory, "checkpoint")) as handle:
        lines = handle.read().splitlines()
    return [not os.path.isabs(line.split('"')[1]) for line in lines]


@behaviour
def step_0_checkpoint_exists(tf, E, new_dir):  # test_checkpoint_contains_relative_paths: model.ckpt-0
    dummy, incrementer, _ = make(tf, E)
    directory = new_dir()
    E.Estimator(incrementer, model_dir=directory).train(dummy, steps=5)
    return [steps_of(p) for p in tf.train.get_checkpoint_state(directory).all_model_checkpoint_paths]


@behaviour
def train_save_copy_reload(tf, E, new_dir):  # test_train_save_copy_reload
    dummy, incrementer, _ = make(tf, E)
    first, second = new_dir(), new_dir()
    est = E.Estimator(incrementer, model_dir=first)
    est.train(dummy, steps=5)
    if hasattr(est, "close"):
        est.close()  # ours: release the session before the directory moves (tf.estimator held nothing)
    shutil.rmtree(second)
    os.rename(first, second)
    moved = E.Estimator(incrementer, model_dir=second)
    moved.train(dummy, steps=5)
    return int(moved.get_variable_value("global_step"))


@behaviour
def loss_summary_at_the_top_of_model_dir(tf, E, new_dir):  # test_loss_summary; issue 27, item 4
    dummy, incrementer, _ = make(tf, E)
    directory = new_dir()
    est = E.Estimator(
        incrementer, model_dir=directory, config=E.RunConfig(save_summary_steps=1, log_step_count_steps=1)
    )
    est.train(dummy, steps=3)
    tags = set()
    for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
        for event in tf.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    return sorted(tag for tag in tags if tag in ("loss", "global_step/sec"))


@behaviour
def graph_pbtxt(tf, E, new_dir):  # issue 27, item 4
    dummy, incrementer, _ = make(tf, E)
    directory = new_dir()
    E.Estimator(incrementer, model_dir=directory).train(dummy, steps=1)
    return os.path.isfile(os.path.join(directory, "graph.pbtxt"))


@behaviour
def saving_listeners_are_used(tf, E, new_dir):  # test_saving_listeners_are_used
    dummy, incrementer, _ = make(tf, E)
    listener = Listener(tf)
    est = E.Estimator(incrementer, model_dir=new_dir(), config=E.RunConfig(save_checkpoints_steps=10))
    est.train(dummy, steps=26, saving_listeners=[listener])
    first = [list(listener.before), list(listener.after)]
    est.train(dummy, steps=5, saving_listeners=[listener])
    return [first, listener.after, listener.begun, listener.ended]


@behaviour
def saver_hook_should_exist_to_use_saving_listeners(tf, E, new_dir):
    dummy, incrementer, _ = make(tf, E)
    config = E.RunConfig(save_checkpoints_steps=None, save_checkpoints_secs=None)
    est = E.Estimator(incrementer, model_dir=new_dir(), config=config)
    est.train(dummy, steps=1, saving_listeners=[Listener(tf)])


@behaviour
def listeners_should_be_listeners(tf, E, new_dir):  # test_listeners_should_be_listeners
    dummy, incrementer, _ = make(tf, E)
    E.Estimator(incrementer, model_dir=new_dir()).train(dummy, steps=1, saving_listeners=["not-a-listener"])


@behaviour
def hooks_should_be_session_run_hook(tf, E, new_dir):  # test_hooks_should_be_session_run_hook
    dummy, incrementer, _ = make(tf, E)
    E.Estimator(incrementer, model_dir=new_dir()).train(dummy, steps=1, hooks=["NotAHook"])


@behaviour
def scaffold_init_fn_is_used(tf, E, new_dir):  # test_scaffold_is_used
    dummy, _, _ = make(tf, E)
    called = []

    def model_fn(features, labels, mode):
        return E.EstimatorSpec(
            mode,
            loss=tf.constant(0.0),
            train_op=tf.assign_add(tf.train.get_global_step(), 1),
            scaffold=tf.train.Scaffold(init_fn=lambda scaffold, session: called.append(1)),
        )

    E.Estimator(model_fn, model_dir=new_dir()).train(dummy, steps=1)
    return bool(called)


@behaviour
def scaffold_saver_is_used(tf, E, new_dir):  # test_scaffold_is_used_for_saver (training)
    dummy, _, _ = make(tf, E)

    def model_fn(features, labels, mode):
        tf.get_variable("w", initializer=1.0)
        saver = tf.train.Saver(max_to_keep=1)
        return E.EstimatorSpec(
            mode,
            loss=tf.constant(0.0),
            train_op=tf.assign_add(tf.train.get_global_step(), 1),
            scaffold=tf.train.Scaffold(saver=saver),
        )

    est = E.Estimator(model_fn, model_dir=new_dir(), config=E.RunConfig(save_checkpoints_steps=2))
    est.train(dummy, steps=6)
    return [steps_of(p) for p in tf.train.get_checkpoint_state(est.model_dir).all_model_checkpoint_paths]


@behaviour
def training_hooks_are_used(tf, E, new_dir):  # test_training_hooks_are_used
    dummy, _, _ = make(tf, E)
    seen = []

    class Hook(tf.train.SessionRunHook):
        def __init__(self, name):
            self.name = name

        def begin(self):
            seen.append(self.name)

    def model_fn(features, labels, mode):
        return E.EstimatorSpec(
            mode,
            loss=tf.constant(0.0),
            train_op=tf.assign_add(tf.train.get_global_step(), 1),
            training_chief_hooks=[Hook("chief")],
            training_hooks=[Hook("hook")],
        )

    E.Estimator(model_fn, model_dir=new_dir()).train(dummy, steps=1)
    return sorted(seen)


@behaviour
def hook_gets_the_global_step_in_before_run(tf, E, new_dir):  # issue 27, item 5
    dummy, incrementer, _ = make(tf, E)
    fetched = []

    class StepHook(tf.train.SessionRunHook):
        def before_run(self, run_context):
            step = tf.train.get_global_step()
            return tf.train.SessionRunArgs(step) if step is not None else None

        def after_run(self, run_context, run_values):
            fetched.append(None if run_values.results is None else int(run_values.results))

    E.Estimator(incrementer, model_dir=new_dir()).train(dummy, steps=3, hooks=[StepHook()])
    # The hook's read of the variable and the train_op's increment run in one session.run, unordered: which
    # of the step's two values the hook gets is a race in tf.estimator itself (40 runs of this behaviour on
    # the real one: 33 [0, 1, 2], 4 [1, 1, 2], 2 [0, 1, 3], 1 [1, 2, 2]). What holds on both sides is that
    # the hook reads the model graph's global step during its own step: i or i + 1 at the i-th step.
    return [value is not None and value - i in (0, 1) for i, value in enumerate(fetched)]


@behaviour
def features_labels_mode(tf, E, new_dir):  # test_features_labels_mode
    dummy, _, _ = make(tf, E)
    seen = {}

    def model_fn(features, labels, mode):
        seen[mode] = [sorted(features), labels is not None]
        return E.EstimatorSpec(
            mode,
            predictions=features["x"],
            loss=tf.constant(0.0),
            train_op=tf.assign_add(tf.train.get_global_step(), 1),
        )

    est = E.Estimator(model_fn, model_dir=new_dir())
    est.train(dummy, steps=1)
    est.evaluate(dummy, steps=1)
    next(est.predict(lambda: {"x": tf.constant([[1.0], [1.0]])}))
    return [seen.get(E.ModeKeys.TRAIN), seen.get(E.ModeKeys.EVAL), seen.get(E.ModeKeys.PREDICT)]


@behaviour
def graph_random_seed(tf, E, new_dir):  # test_graph_initialization_global_step_and_random_seed
    dummy, _, _ = make(tf, E)
    seeds = []

    def model_fn(features, labels, mode):
        seeds.append(tf.get_default_graph().seed)
        return E.EstimatorSpec(mode, loss=tf.constant(0.0), train_op=tf.assign_add(tf.train.get_global_step(), 1))

    E.Estimator(model_fn, model_dir=new_dir(), config=E.RunConfig(tf_random_seed=11)).train(dummy, steps=1)
    return sorted(set(seeds))


@behaviour
def training_stops_when_the_data_ends(tf, E, new_dir):
    est = E.Estimator(classifier_fn(tf, E), model_dir=new_dir())
    est.train(data_fn(tf, 64), steps=100)  # 4 batches of 16
    return int(est.get_variable_value("global_step"))


# -- evaluate ------------------------------------------------------------------------------------


def metric_fn(tf, E):
    def model_fn(features, labels, mode, params):  # _model_fn_with_eval_metric_ops
        loss = tf.constant(1.0)
        metric = tf.identity(tf.constant(float(params.get("metric_value", 2.0))))
        return E.EstimatorSpec(
            mode,
            loss=loss,
            predictions={"predictions": tf.constant(1.0)},
            train_op=tf.assign_add(tf.train.get_global_step(), 1),
            eval_metric_ops={params.get("metric_name", "metric"): (metric, tf.no_op())},
        )

    return model_fn


@behaviour
def evaluate_without_checkpoint_uses_init(tf, E, new_dir):  # test_no_checkpoint_uses_init; item 5
    dummy, _, _ = make(tf, E)

    def model_fn(features, labels, mode):
        return E.EstimatorSpec(
            mode,
            loss=tf.constant(1.0),
            train_op=tf.assign_add(tf.train.get_global_step(), 1),
            eval_metric_ops={"mean": tf.metrics.mean(tf.Variable(2.0) + 1)},
        )

    scores = E.Estimator(model_fn, model_dir=new_dir()).evaluate(dummy, steps=1)
    return {key: float(value) for key, value in sorted(scores.items())}


@behaviour
def evaluate_without_checkpoint_uses_warm_start(tf, E, new_dir):  # ..._with_warm_starting
    dummy, _, variable_fn = make(tf, E)
    source = E.Estimator(variable_fn(42.0), model_dir=new_dir())
    source.train(dummy, steps=10)
    warm = E.Estimator(variable_fn(36.0), model_dir=new_dir(), warm_start_from=source.model_dir)
    scores = warm.evaluate(dummy, steps=1)
    return [float(scores["x"]), int(scores["global_step"])]


@behaviour
def evaluate_steps0_raises_error(tf, E, new_dir):
    dummy, incrementer, _ = make(tf, E)
    est = E.Estimator(incrementer, model_dir=new_dir())
    est.train(dummy, steps=1)
    est.evaluate(dummy, steps=0)


def evaluated_with_a_metric_named(tf, E, new_dir, name):
    dummy, _, _ = make(tf, E)
    est = E.Estimator(metric_fn(tf, E), model_dir=new_dir(), params={"metric_name": name})
    est.train(dummy, steps=5)
    est.evaluate(dummy, steps=1)


@behaviour
def global_step_metric_raises_error(tf, E, new_dir):  # test_global_step_metric_raises_error; item 6
    evaluated_with_a_metric_named(tf, E, new_dir, "global_step")


@behaviour
def loss_metric_raises_error(tf, E, new_dir):  # _verify_and_create_loss_metric
    evaluated_with_a_metric_named(tf, E, new_dir, "loss")


@behaviour
def global_step_and_loss_are_reported(tf, E, new_dir):  # test_global_step_is_reported
    dummy, _, _ = make(tf, E)
    est = E.Estimator(metric_fn(tf, E), model_dir=new_dir(), params={"metric_value": 3.0})
    est.train(dummy, steps=5)
    scores = est.evaluate(dummy, steps=1)
    return {key: float(value) for key, value in sorted(scores.items())}


@behaviour
def evaluate_from_checkpoint(tf, E, new_dir):  # test_evaluate_from_checkpoint
    dummy, incrementer, _ = make(tf, E)
    est = E.Estimator(incrementer, model_dir=new_dir())
    est.train(dummy, steps=5)
    early = est.latest_checkpoint()
    est.train(dummy, steps=5)
    return int(est.evaluate(dummy, steps=1, checkpoint_path=early)["global_step"])


@behaviour
def evaluate_another_models_checkpoint(tf, E, new_dir):  # issue 27, item 5
    dummy, _, variable_fn = make(tf, E)
    other = E.Estimator(variable_fn(42.0), model_dir=new_dir())
    other.train(dummy, steps=7)
    mine = E.Estimator(variable_fn(36.0), model_dir=new_dir())
    mine.train(dummy, steps=2)
    scores = mine.evaluate(dummy, steps=1, checkpoint_path=other.latest_checkpoint())
    again = mine.evaluate(dummy, steps=1)
    return [float(scores["x"]), int(scores["global_step"]), float(again["x"]), int(again["global_step"])]


@behaviour
def evaluate_invalid_checkpoint_path(tf, E, new_dir):  # test_no_trained_model_invalid_checkpoint_path
    dummy, incrementer, _ = make(tf, E)
    E.Estimator(incrementer, model_dir=new_dir()).evaluate(dummy, steps=1, checkpoint_path=new_dir() + "/nothing")


@behaviour
def eval_dir(tf, E, new_dir):  # test_eval_dir
    _, incrementer, _ = make(tf, E)
    directory = new_dir()
    est = E.Estimator(incrementer, model_dir=directory)
    return [os.path.relpath(est.eval_dir(), directory), os.path.relpath(est.eval_dir("a"), directory)]


@behaviour
def evaluation_hooks_are_used(tf, E, new_dir):  # test_evaluation_hooks_are_used
    dummy, incrementer, _ = make(tf, E)
    runs = []

    class Hook(tf.train.SessionRunHook):
        def after_run(self, run_context, run_values):
            runs.append(1)

    est = E.Estimator(incrementer, model_dir=new_dir())
    est.train(dummy, steps=1)
    est.evaluate(dummy, steps=3, hooks=[Hook()])
    return len(runs)


@behaviour
def evaluation_events_in_eval_dir(tf, E, new_dir):
    dummy, _, _ = make(tf, E)
    est = E.Estimator(metric_fn(tf, E), model_dir=new_dir())
    est.train(dummy, steps=2)
    est.evaluate(dummy, steps=1)
    tags = set()
    for path in glob.glob(os.path.join(est.eval_dir(), "events.out.tfevents.*")):
        for event in tf.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    return sorted(tags & {"loss", "metric"})


# -- predict -------------------------------------------------------------------------------------


@behaviour
def predict_without_checkpoint_uses_init(tf, E, new_dir):  # test_no_checkpoint_uses_init (predict)
    def model_fn(features, labels, mode):
        v = tf.Variable([[16.0]], name="weight")
        return E.EstimatorSpec(
            mode,
            loss=tf.constant(0.0),
            train_op=tf.assign_add(tf.train.get_global_step(), 1),
            predictions=features["x"] * v,
        )

    est = E.Estimator(model_fn, model_dir=new_dir())
    rows = est.predict(lambda: tf.data.Dataset.from_tensor_slices({"x": np.array([[1.0], [2.0]], np.float32)}).batch(2))
    return [float(p[0]) for p in rows]


@behaviour
def predict_from_old_model_dir(tf, E, new_dir):  # test_predict_from_old_model_dir
    dummy, _, _ = make(tf, E)

    def model_fn(features, labels, mode):
        v = tf.Variable([[16.0]], name="weight")
        return E.EstimatorSpec(
            mode,
            loss=tf.constant(0.0),
            train_op=tf.assign_add(tf.train.get_global_step(), 1),
            predictions=v * 2 + 0 * features["x"],
        )

    first = E.Estimator(model_fn, model_dir=new_dir())
    first.train(dummy, steps=1)
    second = E.Estimator(model_fn, model_dir=first.model_dir)
    return [float(v) for v in next(second.predict(dummy))]


@behaviour
def predict_keys_does_not_exist(tf, E, new_dir):  # test_predict_keys_does_not_exists
    est = E.Estimator(classifier_fn(tf, E), model_dir=new_dir())
    est.train(data_fn(tf), steps=1)
    next(est.predict(data_fn(tf), predict_keys=["nothing"]))


@behaviour
def predict_keys_given(tf, E, new_dir):  # test_return_given_predict_keys
    est = E.Estimator(classifier_fn(tf, E), model_dir=new_dir())
    est.train(data_fn(tf), steps=1)
    return sorted(next(est.predict(data_fn(tf), predict_keys=["classes"])))


@behaviour
def yield_rows_of_dict(tf, E, new_dir):  # test_yield_rows_of_dict
    est = E.Estimator(classifier_fn(tf, E), model_dir=new_dir())
    est.train(data_fn(tf), steps=1)
    rows = list(est.predict(data_fn(tf, 20)))
    batches = list(est.predict(data_fn(tf, 20), yield_single_examples=False))
    return [len(rows), sorted(rows[0]), len(batches)]


@behaviour
def batch_size_mismatch(tf, E, new_dir):  # test_batch_size_mismatch
    dummy, _, _ = make(tf, E)

    def model_fn(features, labels, mode):
        return E.EstimatorSpec(
            mode,
            loss=tf.constant(0.0),
            train_op=tf.assign_add(tf.train.get_global_step(), 1),
            predictions={"y1": features["x"], "y2": tf.constant([1.0, 2.0, 3.0])},
        )

    est = E.Estimator(model_fn, model_dir=new_dir())
    est.train(dummy, steps=1)
    next(est.predict(dummy))


@behaviour
def predict_from_checkpoint_path(tf, E, new_dir):  # test_predict_from_checkpoint_path
    dummy, _, variable_fn = make(tf, E)
    other = E.Estimator(variable_fn(42.0), model_dir=new_dir())
    other.train(dummy, steps=1)
    mine = E.Estimator(variable_fn(36.0), model_dir=new_dir())
    mine.train(dummy, steps=1)
    found = next(mine.predict(dummy, checkpoint_path=other.latest_checkpoint()))
    again = next(mine.predict(dummy))
    return [float(found["y"][0]), float(again["y"][0])]


def ones_fn(tf, E, cast):
    """Logits of a dense layer of ones over ``features['x']`` (cast to float32 first when ``cast``)."""

    def model_fn(features, labels, mode):
        x = tf.cast(features["x"], tf.float32) if cast else features["x"]
        logits = tf.layers.dense(x, 2, kernel_initializer=tf.ones_initializer())
        if mode == E.ModeKeys.PREDICT:
            return E.EstimatorSpec(mode, predictions={"logits": logits})
        loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
        return E.EstimatorSpec(mode, loss=loss, train_op=tf.assign_add(tf.train.get_global_step(), 1))

    return model_fn


@behaviour
def predict_float32_after_training_on_float64(tf, E, new_dir):  # issue 27, item 5
    est = E.Estimator(ones_fn(tf, E, cast=True), model_dir=new_dir())
    est.train(data_fn(tf, dtype=np.float64), steps=1)
    x = [[1.0, 2.0, 3.0]]
    rows = est.predict(lambda: tf.data.Dataset.from_tensor_slices({"x": np.array(x, np.float32)}).batch(1))
    return [round(float(v), 4) for v in next(rows)["logits"]]


@behaviour
def predict_int_features_after_training_on_float32(tf, E, new_dir):  # issue 27, item 5: lossy is refused
    est = E.Estimator(ones_fn(tf, E, cast=False), model_dir=new_dir())
    est.train(data_fn(tf), steps=1)
    rows = est.predict(lambda: tf.data.Dataset.from_tensor_slices({"x": np.array([[1, 2, 3]], np.int64)}).batch(1))
    return [round(float(v), 4) for v in next(rows)["logits"]]


# -- export --------------------------------------------------------------------------------------


def receiver_fn(tf, E):
    def serving_input_receiver_fn():
        x = tf.placeholder(tf.float32, [None, 3], name="x")
        return E.export.ServingInputReceiver({"x": x}, {"x": x})

    return serving_input_receiver_fn


@behaviour
def export_saved_model_signatures(tf, E, new_dir):  # test_export_saved_model_proto_roundtrip_raw_receiver
    est = E.Estimator(classifier_fn(tf, E), model_dir=new_dir())
    est.train(data_fn(tf), steps=2)
    path = est.export_saved_model(new_dir(), receiver_fn(tf, E))
    with tf.Graph().as_default(), tf.Session() as session:
        meta = tf.saved_model.loader.load(session, ["serve"], path)
    return [isinstance(path, bytes), sorted(meta.signature_def), sorted(meta.signature_def["serving_default"].outputs)]


@behaviour
def export_savedmodel_tf1_signature(tf, E, new_dir):  # issue 27, item 5
    est = E.Estimator(classifier_fn(tf, E), model_dir=new_dir())
    est.train(data_fn(tf), steps=2)
    path = est.export_savedmodel(new_dir(), receiver_fn(tf, E), strip_default_attrs=True)
    return os.path.isfile(os.path.join(path.decode(), "saved_model.pb"))


@behaviour
def export_from_warm_start(tf, E, new_dir):  # test_export_from_warm_start
    dummy, _, variable_fn = make(tf, E)
    source = E.Estimator(variable_fn(42.0), model_dir=new_dir())
    source.train(dummy, steps=10)
    warm = E.Estimator(variable_fn(36.0), model_dir=new_dir(), warm_start_from=source.model_dir)

    def receiver():
        x = tf.placeholder(tf.float32, [None, 1], name="features_x")
        return E.export.ServingInputReceiver({"x": x}, {"x": x})

    path = warm.export_saved_model(new_dir(), receiver)
    return float(tf.train.load_variable(os.path.join(path.decode(), "variables", "variables"), "x"))


@behaviour
def export_without_checkpoint(tf, E, new_dir):
    est = E.Estimator(classifier_fn(tf, E), model_dir=new_dir())
    est.export_saved_model(new_dir(), receiver_fn(tf, E))


# -- warm start ----------------------------------------------------------------------------------


@behaviour
def warm_starts_from_a_model_dir(tf, E, new_dir):  # test_warm_starts; issue 27, item 1
    dummy, _, variable_fn = make(tf, E)
    source = E.Estimator(variable_fn(42.0), model_dir=new_dir())
    source.train(dummy, steps=10)
    warm = E.Estimator(variable_fn(36.0), model_dir=new_dir(), warm_start_from=source.model_dir)
    warm.train(dummy, steps=5)
    return [float(warm.get_variable_value("x")), int(warm.get_variable_value("global_step"))]


@behaviour
def warm_starts_from_a_checkpoint_path(tf, E, new_dir):
    dummy, _, variable_fn = make(tf, E)
    source = E.Estimator(variable_fn(42.0), model_dir=new_dir())
    source.train(dummy, steps=3)
    warm = E.Estimator(variable_fn(36.0), model_dir=new_dir(), warm_start_from=source.latest_checkpoint())
    warm.train(dummy, steps=1)
    return float(warm.get_variable_value("x"))


@behaviour
def warm_starts_from_a_saved_model(tf, E, new_dir):  # test_warm_starts_from_savedmodel
    dummy, _, variable_fn = make(tf, E)
    source = E.Estimator(variable_fn(42.0), model_dir=new_dir())
    source.train(dummy, steps=3)

    def receiver():
        x = tf.placeholder(tf.float32, [None, 1], name="features_x")
        return E.export.ServingInputReceiver({"x": x}, {"x": x})

    exported = source.export_saved_model(new_dir(), receiver)
    warm = E.Estimator(variable_fn(36.0), model_dir=new_dir(), warm_start_from=exported.decode())
    warm.train(dummy, steps=1)
    return float(warm.get_variable_value("x"))


@behaviour
def warm_start_settings_choose_variables(tf, E, new_dir):  # WarmStartSettings(vars_to_warm_start=...)
    dummy, _, _ = make(tf, E)

    def two(a, b):
        def model_fn(features, labels, mode):
            va = tf.get_variable("a", initializer=a)
            vb = tf.get_variable("b", initializer=b)
            return E.EstimatorSpec(
                mode, loss=tf.constant(1.0) + 0 * (va + vb), train_op=tf.assign_add(tf.train.get_global_step(), 1)
            )

        return model_fn

    source = E.Estimator(two(1.0, 2.0), model_dir=new_dir())
    source.train(dummy, steps=1)
    settings = E.WarmStartSettings(ckpt_to_initialize_from=source.model_dir, vars_to_warm_start="a")
    warm = E.Estimator(two(10.0, 20.0), model_dir=new_dir(), warm_start_from=settings)
    warm.train(dummy, steps=1)
    return [float(warm.get_variable_value("a")), float(warm.get_variable_value("b"))]


@behaviour
def warm_start_skips_non_trainable_by_default(tf, E, new_dir):  # WarmStartSettings: '.*' is TRAINABLE only
    dummy, _, _ = make(tf, E)

    def with_counter(start):
        def model_fn(features, labels, mode):
            w = tf.get_variable("w", initializer=start)
            c = tf.get_variable("c", initializer=start, trainable=False)
            return E.EstimatorSpec(
                mode, loss=tf.constant(1.0) + 0 * (w + c), train_op=tf.assign_add(tf.train.get_global_step(), 1)
            )

        return model_fn

    source = E.Estimator(with_counter(5.0), model_dir=new_dir())
    source.train(dummy, steps=1)
    warm = E.Estimator(with_counter(7.0), model_dir=new_dir(), warm_start_from=source.model_dir)
    warm.train(dummy, steps=1)
    return [float(warm.get_variable_value("w")), float(warm.get_variable_value("c"))]


@behaviour
def warm_start_reproduces_the_source(tf, E, new_dir):  # issue 27, item 1 (lr 0, one step)
    source = E.Estimator(classifier_fn(tf, E), model_dir=new_dir(), params={"learning_rate": 0.5})
    source.train(data_fn(tf, repeat=True), steps=40)
    accuracy = source.evaluate(data_fn(tf, 64, seed=1))["accuracy"]
    warm = E.Estimator(
        classifier_fn(tf, E), model_dir=new_dir(), params={"learning_rate": 0.0}, warm_start_from=source.model_dir
    )
    warm.train(data_fn(tf), steps=1)
    return round(float(warm.evaluate(data_fn(tf, 64, seed=1))["accuracy"] - accuracy), 6)


@behaviour
def warm_start_is_ignored_once_model_dir_has_a_checkpoint(tf, E, new_dir):
    dummy, _, variable_fn = make(tf, E)
    source = E.Estimator(variable_fn(42.0), model_dir=new_dir())
    source.train(dummy, steps=1)
    directory = new_dir()
    E.Estimator(variable_fn(36.0), model_dir=directory).train(dummy, steps=1)
    warm = E.Estimator(variable_fn(50.0), model_dir=directory, warm_start_from=source.model_dir)
    warm.train(dummy, steps=1)
    return float(warm.get_variable_value("x"))
