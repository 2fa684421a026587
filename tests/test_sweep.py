"""Sweeps: a real Optuna study (SQLite storage, a median pruner) over a tiny model, tracked in a real
MLflow store; read back as MLflow stores it (the runs, their parent relation, tags, metrics and
checkpoints). The course of each trial is designed (``target_model_fn``): a trial with target ``t``
validates at loss ``t**2`` after every epoch, so which trials the median pruner stops is known."""

from __future__ import annotations

import optuna
import pytest
from conftest import history, stored_steps, target_model_fn, targets, zero_targets
from mlflow import MlflowClient
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from elistimator_tracking import InvalidTypeError, InvalidValueError
from elistimator_tracking.sweep import PruningListener, Sweep, TrialPruned, register_best_trial
from elistimator_tracking.tracking.names import (
    BEST_RUN_TAG,
    BEST_TRIAL_TAG,
    BEST_VALUE,
    ERROR_TAG,
    PARENT_RUN_TAG,
    STUDY_DIRECTION_TAG,
    STUDY_PRUNER_TAG,
    STUDY_SPACE_TAG,
    STUDY_TAG,
    TRIAL_NUMBER_TAG,
    TRIAL_STATE_TAG,
    best_param_tag,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
COURSE = [0.3, 0.2, 1.0, 0.1, 2.0]  # trials 2 and 4 are worse than the median at their first validation
EPOCHS = 3  # 3 steps an epoch: validations at steps 3, 6, 9


def objective_of(sweep: Sweep, epochs: int = EPOCHS):
    def objective(trial):
        t = sweep.params(trial)["t"]
        with sweep.trial(trial, target_model_fn, targets(t), zero_targets, verbose=False) as est:
            while est.global_step < 3 * epochs:
                est.train().validate()
                est.save_ckpt()
            return sweep.best_value(est)

    return objective


def new_study(storage: str, name: str = "tiny") -> optuna.Study:
    return optuna.create_study(
        study_name=name,
        storage=storage,
        direction="minimize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
        load_if_exists=True,
    )


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """Five trials of the designed course, run as one study; (sweep, client, runs by trial number)."""
    root = tmp_path_factory.mktemp("sweep")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    study = new_study(f"sqlite:///{root / 'optuna.db'}")
    for t in COURSE:
        study.enqueue_trial({"t": t})
    sweep = Sweep(study, root / "trials", "loss", space={"t": FloatDistribution(0.0, 3.0)}, tracking_uri=uri)
    sweep.optimize(objective_of(sweep), n_trials=len(COURSE))
    client = MlflowClient(uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("tiny").experiment_id],
        filter_string=f"tags.`{PARENT_RUN_TAG}` = '{sweep.parent_run_id}'",
    )
    return sweep, client, {int(r.data.tags[TRIAL_NUMBER_TAG]): r for r in runs}


def test_the_median_pruner_prunes_the_trials_worse_than_the_median_and_optuna_records_them(swept):
    sweep, _, _ = swept
    states = [t.state for t in sweep.study.get_trials()]
    assert states == [
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.COMPLETE,
        TrialState.PRUNED,
    ]
    assert [t.value for t in sweep.study.get_trials() if t.state == TrialState.COMPLETE] == pytest.approx(
        [0.09, 0.04, 0.01]
    )
    assert sweep.study.trials[2].intermediate_values == pytest.approx({3: 1.0})


def test_every_trial_is_a_child_run_of_the_one_parent_with_its_params_number_and_state(swept):
    sweep, client, runs = swept
    assert sorted(runs) == [0, 1, 2, 3, 4]
    for number, run in runs.items():
        trial = sweep.study.trials[number]
        assert run.data.tags[PARENT_RUN_TAG] == sweep.parent_run_id
        assert float(run.data.params["t"]) == pytest.approx(trial.params["t"])
        assert run.data.tags[TRIAL_STATE_TAG] == trial.state.name
        assert trial.user_attrs["elistimator:run_id"] == run.info.run_id
        assert run.info.run_name == f"trial-{number}"
    parents = client.search_runs([runs[0].info.experiment_id], filter_string=f"tags.`{STUDY_TAG}` = 'tiny'")
    assert [p.info.run_id for p in parents] == [sweep.parent_run_id]  # one parent, not a child of anything
    assert PARENT_RUN_TAG not in parents[0].data.tags


def test_a_pruned_trial_run_ends_killed_tagged_pruned_with_its_checkpoint_and_metrics_intact(swept):
    _, client, runs = swept
    for number in (2, 4):
        run = runs[number]
        assert run.info.status == "KILLED" and run.data.tags[TRIAL_STATE_TAG] == "PRUNED"
        assert "pruned by MedianPruner" in run.data.tags[ERROR_TAG]
        assert run.data.tags["elistimator.stop.step"] == "3"
        assert stored_steps(client, run.info.run_id) == [3]  # the checkpoint of the pruning validation
        assert history(client, run.info.run_id, "validation/loss") == [(3, pytest.approx(COURSE[number] ** 2))]
    for number in (0, 1, 3):
        run = runs[number]
        assert run.info.status == "FINISHED" and run.data.tags[TRIAL_STATE_TAG] == "COMPLETE"
        assert stored_steps(client, run.info.run_id) == [3, 6, 9]


def test_the_parent_describes_the_study_and_holds_the_best_trial(swept):
    sweep, client, runs = swept
    parent = client.get_run(sweep.parent_run_id)
    tags = parent.data.tags
    assert parent.info.status == "FINISHED" and parent.info.run_name == "tiny"
    assert tags[STUDY_DIRECTION_TAG] == "minimize" and tags[STUDY_PRUNER_TAG].startswith("MedianPruner(")
    assert '"t"' in tags[STUDY_SPACE_TAG] and "FloatDistribution" in tags[STUDY_SPACE_TAG]
    assert tags[BEST_TRIAL_TAG] == "3" and tags[BEST_RUN_TAG] == runs[3].info.run_id
    assert float(tags[best_param_tag("t")]) == pytest.approx(0.1)
    # the best value after each finished trial, stepped by the trials finished so far
    assert history(client, sweep.parent_run_id, BEST_VALUE) == [
        (1, pytest.approx(0.09)),
        (2, pytest.approx(0.04)),
        (3, pytest.approx(0.04)),
        (4, pytest.approx(0.01)),
        (5, pytest.approx(0.01)),
        (5, pytest.approx(0.01)),  # finish(): the study's end
    ]


def test_the_best_checkpoint_of_the_best_trial_is_registered(swept):
    sweep, client, runs = swept
    version, note = register_best_trial(sweep.study, "tiny-sweep")
    registered = client.get_model_version("tiny-sweep", version)
    assert note is None and registered.run_id == runs[3].info.run_id
    assert registered.tags["elistimator.step"] == "9"  # loss 0.01 at every step: the latest of equals
    assert str(client.get_model_version_by_alias("tiny-sweep", "champion").version) == version


def test_the_command_registers_the_best_trials_checkpoint(swept, capsys):
    from elistimator_tracking.cli import main

    sweep, client, runs = swept
    storage = f"sqlite:///{sweep.root.parent / 'optuna.db'}"
    argv = ["register-best-trial", "tiny", "tiny-cli", "--storage", storage, "--tracking-uri", sweep.tracking_uri]
    assert main(argv) == 0
    assert "registered models:/tiny-cli/1 (@champion)" in capsys.readouterr().out
    assert client.get_model_version("tiny-cli", "1").run_id == runs[3].info.run_id
    assert main(["register-best-trial", "nope", "tiny-cli", "--storage", storage]) == 1
    assert "no study 'nope'" in capsys.readouterr().err


def test_a_second_sweep_on_the_study_finds_its_parent_and_refuses_another_metric(swept):
    sweep, _, _ = swept
    again = Sweep(sweep.study, sweep.root, "loss", tracking_uri=sweep.tracking_uri)
    assert again.parent_run_id == sweep.parent_run_id
    with pytest.raises(InvalidValueError, match="swept with metric 'loss'"):
        Sweep(sweep.study, sweep.root, "w", tracking_uri=sweep.tracking_uri)
    with pytest.raises(InvalidValueError, match=r"space\['t'\].*searches it as"):
        Sweep(
            sweep.study, sweep.root, "loss", space={"t": FloatDistribution(0.0, 1.0)}, tracking_uri=sweep.tracking_uri
        )


@pytest.mark.parametrize(
    "space, error, message",
    [
        ([1, 2], InvalidTypeError, "space must be a dict"),
        ({"t": (0.0, 1.0)}, InvalidTypeError, r"space\['t'\] must be one of optuna.distributions"),
        ({"": FloatDistribution(0, 1)}, InvalidValueError, "non-empty string"),
        ({"a b?": CategoricalDistribution([1])}, InvalidValueError, "not a name MLflow takes"),
    ],
)
def test_a_bad_search_space_is_refused_before_any_trial(tmp_path, space, error, message):
    study = new_study(f"sqlite:///{tmp_path / 'optuna.db'}")
    with pytest.raises(error, match=message):
        Sweep(study, tmp_path / "trials", space=space, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "trials").exists()


def test_a_monitored_metric_validate_does_not_return_fails_the_trial_before_any_training(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    study = new_study(f"sqlite:///{tmp_path / 'optuna.db'}")
    sweep = Sweep(study, tmp_path / "trials", "accuracy", tracking_uri=uri)
    trained = []

    def objective(trial):
        with sweep.trial(trial, target_model_fn, targets(1.0), zero_targets, verbose=False) as est:
            trained.append(est.train().global_step)
            return 0.0

    with pytest.raises(
        InvalidValueError,
        match=r"monitors validation 'accuracy', which validate\(\) does not return; it returns \['loss', 'w'\]",
    ):
        study.optimize(objective, n_trials=1, callbacks=[sweep])
    assert trained == [] and study.trials[0].state == TrialState.FAIL
    assert not (tmp_path / "trials" / "trial-0").exists()  # nothing half-written
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert [r.info.run_id for r in runs] == [sweep.parent_run_id]  # no trial run was started


def test_the_pruner_raises_an_error_that_is_both_a_stop_and_optunas_prune():
    stop = TrialPruned("pruned", step=3)
    assert isinstance(stop, optuna.TrialPruned) and stop.run_status == "KILLED" and stop.step == 3
    with pytest.raises(InvalidValueError, match="non-empty string"):
        PruningListener(None, "")


def test_the_pruning_listener_alone_stops_a_users_own_loop_at_a_clean_point(tmp_path):
    """Without ``Sweep``: the listener on a plain Elistimator, the user's own loop and ``with`` block."""
    from elistimator_tracking import Elistimator

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    study = optuna.create_study(direction="minimize", pruner=optuna.pruners.ThresholdPruner(upper=0.5))
    ran = []

    def objective(trial):
        listener = PruningListener(trial, "loss")
        with Elistimator(target_model_fn, tmp_path / "m", verbose=False, tracking=uri, listeners=[listener]) as est:
            est.setup(targets(1.0), zero_targets)  # loss 1.0 at every validation: above the threshold
            for _ in range(3):
                est.train()
                ran.append(est.global_step)
                est.validate()
                est.save_ckpt()  # the pruning validation's checkpoint is still saved
            return est.validate()["loss"]

    study.optimize(objective, n_trials=1)
    assert study.trials[0].state == TrialState.PRUNED and study.trials[0].intermediate_values == {3: 1.0}
    assert ran == [3]  # the next train() raised the prune
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("Default").experiment_id])  # none named
    assert run.info.status == "KILLED" and "pruned by ThresholdPruner" in run.data.tags[ERROR_TAG]
    assert stored_steps(client, run.info.run_id) == [3]
