"""Behaviours of RunConfig, of several Estimators on one model_dir, of train_and_evaluate and the exporters."""

from __future__ import annotations

import os

from behaviours import Listener, behaviour, classifier_fn, data_fn, make, receiver_fn

# -- RunConfig (run_config_test.py) ---------------------------------------------------------------


@behaviour
def run_config_defaults(tf, E, new_dir):  # test_default_property_values
    config = E.RunConfig()
    return [
        config.model_dir,
        config.tf_random_seed,
        config.save_summary_steps,
        config.save_checkpoints_steps,
        config.save_checkpoints_secs,
        config.keep_checkpoint_max,
        config.keep_checkpoint_every_n_hours,
        config.log_step_count_steps,
        config.is_chief,
        config.num_worker_replicas,
        config.task_type,
    ]


@behaviour
def run_config_steps_and_secs(tf, E, new_dir):  # test_save_checkpoint_flip_secs_to_steps
    E.RunConfig(save_checkpoints_steps=10, save_checkpoints_secs=10)


@behaviour
def run_config_replace(tf, E, new_dir):  # test_replace
    config = E.RunConfig().replace(save_checkpoints_steps=3, tf_random_seed=5)
    return [config.save_checkpoints_steps, config.save_checkpoints_secs, config.tf_random_seed]


@behaviour
def run_config_replace_unknown(tf, E, new_dir):  # test_replace_invalid_values
    E.RunConfig().replace(no_such_field=1)


@behaviour
def run_config_keep_checkpoint_max(tf, E, new_dir):
    dummy, incrementer, _ = make(tf, E)
    config = E.RunConfig(save_checkpoints_steps=1, keep_checkpoint_max=2)
    est = E.Estimator(incrementer, model_dir=new_dir(), config=config)
    est.train(dummy, steps=4)
    return [
        os.path.basename(p).rsplit("-", 1)[-1]
        for p in tf.train.get_checkpoint_state(est.model_dir).all_model_checkpoint_paths
    ]


# -- several Estimators on one model_dir (issue 27, item 2) ---------------------------------------


@behaviour
def second_estimator_trains_while_the_first_lives(tf, E, new_dir):
    dummy, incrementer, _ = make(tf, E)
    directory = new_dir()
    first = E.Estimator(incrementer, model_dir=directory)
    first.train(dummy, steps=3)
    second = E.Estimator(incrementer, model_dir=directory)
    second.train(dummy, steps=4)
    return [int(second.get_variable_value("global_step")), int(second.evaluate(dummy, steps=1)["global_step"])]


@behaviour
def first_estimator_sees_the_seconds_checkpoint(tf, E, new_dir):
    dummy, _, variable_fn = make(tf, E)
    directory = new_dir()
    first = E.Estimator(variable_fn(1.0), model_dir=directory)
    first.train(dummy, steps=3)
    first.evaluate(dummy, steps=1)
    second = E.Estimator(variable_fn(1.0), model_dir=directory)
    second.train(dummy, steps=4)
    scores = first.evaluate(dummy, steps=1)
    first.train(dummy, steps=2)
    return [int(scores["global_step"]), int(first.get_variable_value("global_step"))]


@behaviour
def notebook_cell_run_twice(tf, E, new_dir):
    dummy, incrementer, _ = make(tf, E)
    directory = new_dir()
    results = []
    for _ in range(2):  # the cell: est = Estimator(...); est.train(...); est.evaluate(...)
        est = E.Estimator(incrementer, model_dir=directory)
        est.train(dummy, steps=2)
        results.append(int(est.evaluate(dummy, steps=1)["global_step"]))
        del est
    return results


# -- train_and_evaluate and exporters (training_test.py, exporter_test.py) -------------------------


@behaviour
def train_and_evaluate_returns_metrics_and_exports(tf, E, new_dir):
    est = E.Estimator(classifier_fn(tf, E), model_dir=new_dir(), config=E.RunConfig(save_checkpoints_steps=5))
    exporter = E.LatestExporter("latest", receiver_fn(tf, E), exports_to_keep=2)
    result = E.train_and_evaluate(
        est,
        E.TrainSpec(data_fn(tf, repeat=True), max_steps=15),
        E.EvalSpec(data_fn(tf, seed=1), steps=None, throttle_secs=0, exporters=[exporter]),
    )
    metrics, exports = result
    kept = sorted(os.listdir(os.path.join(est.model_dir, "export", "latest")))
    return [type(result).__name__, sorted(metrics), int(metrics["global_step"]), len(exports), len(kept)]


@behaviour
def train_and_evaluate_evaluates_after_each_save(tf, E, new_dir):
    est = E.Estimator(classifier_fn(tf, E), model_dir=new_dir(), config=E.RunConfig(save_checkpoints_steps=5))
    steps = []

    class Hook(tf.train.SessionRunHook):
        def begin(self):
            self.step = tf.train.get_global_step()

        def end(self, session):
            steps.append(int(session.run(self.step)))

    E.train_and_evaluate(
        est,
        E.TrainSpec(data_fn(tf, repeat=True), max_steps=15),
        E.EvalSpec(data_fn(tf, seed=1), steps=None, throttle_secs=0, hooks=[Hook()]),
    )
    return steps


@behaviour
def best_exporter_exports_when_loss_improves(tf, E, new_dir):  # exporter_test.py BestExporter
    est = E.Estimator(classifier_fn(tf, E), model_dir=new_dir(), config=E.RunConfig(save_checkpoints_steps=5))
    exporter = E.BestExporter(serving_input_receiver_fn=receiver_fn(tf, E), exports_to_keep=2)
    _, exports = E.train_and_evaluate(
        est,
        E.TrainSpec(data_fn(tf, repeat=True), max_steps=20),
        E.EvalSpec(data_fn(tf, seed=1), steps=None, throttle_secs=0, exporters=[exporter]),
    )
    folder = os.path.join(est.model_dir, "export", "best_exporter")
    return [exporter.name, len(exports) >= 1, 1 <= len(os.listdir(folder)) <= 2]


@behaviour
def best_exporter_compare_fn(tf, E, new_dir):
    est = E.Estimator(classifier_fn(tf, E), model_dir=new_dir(), config=E.RunConfig(save_checkpoints_steps=5))
    compared = []

    def never_better(best_eval_result, current_eval_result):
        compared.append(sorted(current_eval_result))
        return False

    exporter = E.BestExporter(name="never", serving_input_receiver_fn=receiver_fn(tf, E), compare_fn=never_better)
    _, exports = E.train_and_evaluate(
        est,
        E.TrainSpec(data_fn(tf, repeat=True), max_steps=10),
        E.EvalSpec(data_fn(tf, seed=1), steps=None, throttle_secs=0, exporters=[exporter]),
    )
    return [len([e for e in exports if e]), compared[:1]]


@behaviour
def best_exporter_refuses_a_bad_compare_fn(tf, E, new_dir):
    E.BestExporter(serving_input_receiver_fn=receiver_fn(tf, E), compare_fn=lambda a: True)


@behaviour
def final_exporter_exports_once(tf, E, new_dir):
    est = E.Estimator(classifier_fn(tf, E), model_dir=new_dir(), config=E.RunConfig(save_checkpoints_steps=5))
    exporter = E.FinalExporter("final", receiver_fn(tf, E))
    E.train_and_evaluate(
        est,
        E.TrainSpec(data_fn(tf, repeat=True), max_steps=15),
        E.EvalSpec(data_fn(tf, seed=1), steps=None, throttle_secs=0, exporters=[exporter]),
    )
    return len(os.listdir(os.path.join(est.model_dir, "export", "final")))


@behaviour
def train_and_evaluate_with_saving_listeners(tf, E, new_dir):
    est = E.Estimator(classifier_fn(tf, E), model_dir=new_dir(), config=E.RunConfig(save_checkpoints_steps=5))
    listener = Listener(tf)
    E.train_and_evaluate(
        est,
        E.TrainSpec(data_fn(tf, repeat=True), max_steps=10, saving_listeners=[listener]),
        E.EvalSpec(data_fn(tf, seed=1), steps=None, throttle_secs=0),
    )
    return listener.after


@behaviour
def no_checkpoint_saving_configured(tf, E, new_dir):  # RunConfig(save_checkpoints_steps=None, _secs=None)
    dummy, incrementer, _ = make(tf, E)
    config = E.RunConfig(save_checkpoints_steps=None, save_checkpoints_secs=None)
    est = E.Estimator(incrementer, model_dir=new_dir(), config=config)
    est.train(dummy, steps=3)
    return est.latest_checkpoint() is None
