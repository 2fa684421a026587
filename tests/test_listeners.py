"""Public listeners (``Elistimator(..., listeners=[...])``): every moment in order, a failing listener
warned about once, a misconfigured one refused at ``setup()``, a stop asked for by a listener;
``EarlyStopping`` in a user's loop, in a resumed directory, and in the MLflow run."""

from __future__ import annotations

import pytest
from conftest import dataset_fn, fit_targets, target_model_fn, targets, tiny_model_fn, train_epochs, zero_targets
from mlflow import MlflowClient

from elistimator_tracking import EarlyStopping, Elistimator, ElistimatorWarning, Listener, TrainingStopped
from elistimator_tracking.errors import InvalidValueError


class Recorder(Listener):
    """A listener of a user's: it writes down what it hears."""

    name = "recorder"

    def __init__(self):
        self.heard = []

    def on_setup(self, context):
        self.heard.append(("setup", context.validation_metrics))

    def on_train_summary(self, step, metrics, summary):
        self.heard.append(("summary", step))

    def on_train_end(self, step):
        self.heard.append(("train end", step))

    def on_validation(self, step, metrics, checkpoint):
        self.heard.append(("validation", step, checkpoint is not None))

    def on_checkpoint(self, checkpoint):
        self.heard.append(("checkpoint", checkpoint.step))

    def on_commit(self, committed):
        self.heard.append(("commit", committed))

    def on_evaluation(self, step, metrics):
        self.heard.append(("evaluation", step))

    def on_stop(self, stop):
        self.heard.append(("stop", stop.step))

    def on_close(self, status, error):
        self.heard.append(("close", status))


def test_a_users_listener_hears_every_moment_in_order(tmp_path, data):
    (x, y), (vx, vy) = data
    recorder = Recorder()
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=False, listeners=[recorder]) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        est.train(12)
        est.save_ckpt()
        est.validate()
        est.evaluate(dataset_fn(vx, vy))
    assert recorder.heard == [
        ("setup", ("loss", "accuracy")),
        ("summary", 10),
        ("train end", 12),
        ("checkpoint", 12),
        ("commit", True),
        ("validation", 12, True),
        ("commit", True),
        ("evaluation", 12),
        ("close", "FINISHED"),
    ]


def test_from_disk_takes_listeners_too(tmp_path, data):
    (x, y), (vx, vy) = data
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=False) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        train_epochs(est, 1)
    recorder = Recorder()
    with Elistimator.from_disk(tmp_path / "model", tracking=False, verbose=False, listeners=[recorder]) as loaded:
        loaded.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        loaded.train(1)
    assert recorder.heard[0] == ("setup", ("loss", "accuracy")) and ("train end", 10) in recorder.heard


class Broken(Listener):
    name = "broken listener"

    def on_train_summary(self, step, metrics, summary):
        raise RuntimeError("a bug in my listener")


def test_a_listener_that_raises_is_warned_about_once_and_training_goes_on(tmp_path, data):
    (x, y), (vx, vy) = data
    with pytest.warns(ElistimatorWarning) as caught:
        with Elistimator(
            tiny_model_fn,
            tmp_path / "model",
            verbose=False,
            tracking=False,
            listeners=[Broken(), recorder := Recorder()],
        ) as est:
            est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            est.train(30)
            assert est.global_step == 30
    lost = [str(w.message) for w in caught if "broken listener call is lost" in str(w.message)]
    assert len(lost) == 1 and "RuntimeError: a bug in my listener" in lost[0]
    assert [h for h in recorder.heard if h[0] == "summary"] == [("summary", 10), ("summary", 20), ("summary", 30)]


def test_a_listener_refusing_its_configuration_fails_setup_before_any_training(tmp_path, data):
    (x, y), (vx, vy) = data
    with Elistimator(
        tiny_model_fn, tmp_path / "model", verbose=False, tracking=False, listeners=[EarlyStopping("f1")]
    ) as est:
        with pytest.raises(
            InvalidValueError,
            match=r"EarlyStopping monitors 'f1', which validate\(\) does not "
            r"return; it returns \['accuracy', 'loss'\]",
        ):
            est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        assert est.global_step == 0


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"patience": -1}, "patience must be an int >= 0"),
        ({"mode": "up"}, "mode must be 'min', 'max' or 'auto'"),
        ({"min_delta": -1.0}, "min_delta must be a number >= 0"),
    ],
)
def test_early_stopping_refuses_a_bad_setting(bad, message):
    with pytest.raises(ValueError, match=message):
        EarlyStopping(**bad)


class StopAt(Listener):
    def __init__(self, step):
        self.step = step

    def on_train_summary(self, step, metrics, summary):
        if step >= self.step:
            raise TrainingStopped(f"enough at {step}")


def test_a_stop_during_training_ends_train_after_the_step_and_the_next_train_raises(tmp_path, data):
    (x, y), _ = data
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=False, listeners=[StopAt(20)]) as est:
        est.setup(dataset_fn(x, y))
        est.train(100)
        assert est.global_step == 20 and est.stopped.reason == "enough at 20" and est.stopped.step == 20
        est.save_ckpt()  # a clean point: the user's loop may still save
        with pytest.raises(TrainingStopped, match="enough at 20"):
            est.train()
        assert est.global_step == 20


# the validation losses a course of targets gives: target^2 (target_model_fn learns the target at once)
COURSE = [3.0, 2.0, 1.0, 1.5, 1.2, 1.1, 0.5]  # best after 3 epochs, then 3 without improvement


def early_stopped_loop(est):
    """A user's loop: train an epoch, validate, save; ``TrainingStopped`` ends it."""
    seen = []
    try:
        for value in COURSE:
            est.setup(targets(value), zero_targets)
            est.train()
            seen.append(est.validate()["loss"])
            est.save_ckpt()
    except TrainingStopped as stop:
        return seen, stop
    return seen, None


@pytest.mark.parametrize("patience, epochs", [(0, 4), (1, 4), (2, 5), (3, 6)])
def test_early_stopping_stops_a_users_loop_after_patience_validations_without_improvement(tmp_path, patience, epochs):
    stopping = EarlyStopping("loss", patience=patience)
    with Elistimator(target_model_fn, tmp_path / "model", verbose=False, tracking=False, listeners=[stopping]) as est:
        seen, stop = early_stopped_loop(est)
        assert len(seen) == epochs and stop is not None  # Keras' count: patience 0 and 1 stop at the first
        assert stop.step == 3 * epochs and stopping.best == 1.0 and stopping.best_step == 9
        assert "did not improve" in stop.reason and "the best is 1 at step 9" in stop.reason
        assert est.restore_best_ckpt().global_step == 9


def test_min_delta_counts_small_improvements_as_none(tmp_path):
    stopping = EarlyStopping("loss", patience=1, min_delta=0.5)  # 9 -> 4 -> 1 improve by more; 2.25 does not
    with Elistimator(target_model_fn, tmp_path / "model", verbose=False, tracking=False, listeners=[stopping]) as est:
        seen, stop = early_stopped_loop(est)
    assert seen == [9.0, 4.0, 1.0, 2.25] and stop.step == 12


def test_early_stopping_continues_a_resumed_directory_from_its_history(tmp_path):
    with Elistimator(target_model_fn, tmp_path / "model", verbose=False, tracking=False) as est:
        fit_targets(est, COURSE[:4])  # best at step 9, one validation without improvement since
    stopping = EarlyStopping("loss", patience=2)
    with Elistimator.from_disk(tmp_path / "model", tracking=False, verbose=False, listeners=[stopping]) as est:
        est.setup(targets(COURSE[4]), zero_targets)
        assert (stopping.best, stopping.best_step, stopping.wait) == (1.0, 9, 1)
        est.train()
        with pytest.raises(TrainingStopped):  # the second validation without improvement: stopped
            est.validate()
            est.train()


def test_the_run_records_the_stop_and_ends_finished(tmp_path, tracking_store):
    stopping = EarlyStopping("loss", patience=1)
    with Elistimator(
        target_model_fn, tmp_path / "model", verbose=False, listeners=[stopping], experiment="early-stopping"
    ) as est:
        seen, stop = early_stopped_loop(est)
        run_id = est.run_id
    assert stop is not None and len(seen) == 4
    run = MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["elistimator.stop.step"] == "12" and "did not improve" in tags["elistimator.stop.reason"]
    assert tags["elistimator.stop.best"] == "1 at step 9"


def test_a_stop_leaving_a_with_block_ends_the_run_finished(tmp_path, tracking_store):
    with pytest.raises(TrainingStopped):
        with Elistimator(
            target_model_fn,
            tmp_path / "model",
            verbose=False,
            listeners=[EarlyStopping(patience=0)],
            experiment="early-stopping",
        ) as est:
            for value in COURSE:
                est.setup(targets(value), zero_targets)
                est.train()
                est.validate()
    assert MlflowClient().get_run(est.run_id).info.status == "FINISHED"
