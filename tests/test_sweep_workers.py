"""Sweeps across processes, all real: worker processes (``sweep_worker.py``) running one Optuna study
on a shared storage (PostgreSQL, or SQLite) and tracking to one store; a worker SIGKILLed in the middle
of a trial, and the retry Optuna makes of it continuing the same run and model directory."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import history, stored_steps
from mlflow import MlflowClient
from optuna.trial import TrialState

from elistimator_tracking._faults import CRASH_ENV
from elistimator_tracking.tracking.names import (
    BEST_TRIAL_TAG,
    PARENT_RUN_TAG,
    STUDY_TAG,
    TRIAL_NUMBER_TAG,
    TRIAL_RETRIED_TAG,
    TRIAL_STATE_TAG,
)

pytestmark = pytest.mark.slow
WORKER = Path(__file__).parent / "sweep_worker.py"


def start_worker(storage: str, tracking_uri: str, root: Path, n_trials: int, **env: str) -> subprocess.Popen:
    import os

    return subprocess.Popen(
        [sys.executable, str(WORKER), storage, tracking_uri, str(root), str(n_trials)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def finished(worker: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = worker.communicate(timeout=timeout)
    return worker.returncode, out, err


def study_runs(client: MlflowClient, experiment: str = "shared"):
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    return client.search_runs([experiment_id], max_results=1000)


def test_two_workers_on_one_postgresql_storage_and_mlflow_server_run_every_trial_exactly_once(
    postgres, shared_server, tmp_path
):
    storage = postgres.create_database("optuna").replace("postgresql://", "postgresql+psycopg://")
    workers = [start_worker(storage, shared_server.uri, tmp_path / "trials", 4) for _ in range(2)]
    results = [finished(worker) for worker in workers]
    for code, _, err in results:
        assert code == 0, err[-3000:]
    ran = [out.split("done", 1)[1].split() for _, out, _ in results]
    assert [len(mine) for mine in ran] == [4, 4]
    assert sorted(int(n) for mine in ran for n in mine) == list(range(8))  # each trial by one worker, none lost

    study = optuna.load_study(study_name="shared", storage=storage)
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED} and len(study.trials) == 8
    client = MlflowClient(shared_server.uri)
    runs = study_runs(client)
    parents = [r for r in runs if r.data.tags.get(STUDY_TAG) == "shared"]
    assert len(parents) == 1, [r.info.run_id for r in parents]  # one parent run, however many workers
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get(PARENT_RUN_TAG) == parent.info.run_id]
    assert sorted(int(r.data.tags[TRIAL_NUMBER_TAG]) for r in children) == list(range(8))
    assert len(children) == len(runs) - 1  # every other run of the experiment is a trial of the study
    for run in children:
        trial = study.trials[int(run.data.tags[TRIAL_NUMBER_TAG])]
        assert trial.user_attrs["elistimator:run_id"] == run.info.run_id
        assert run.data.tags[TRIAL_STATE_TAG] == trial.state.name
        assert run.info.status == ("FINISHED" if trial.state == TrialState.COMPLETE else "KILLED")
    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags[BEST_TRIAL_TAG] == str(study.best_trial.number)
    # a claim lost to the other worker leaves at most a deleted candidate, never a second live parent
    deleted = client.search_runs(
        [parent.info.experiment_id], run_view_type=2, filter_string=f"tags.`{STUDY_TAG}` = 'shared'"
    )
    assert len(deleted) <= 1


def test_a_worker_killed_mid_trial_is_retried_in_the_same_run_and_model_directory_from_its_last_checkpoint(tmp_path):
    storage, uri, root = f"sqlite:///{tmp_path / 'optuna.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "t"
    killed = start_worker(storage, uri, root, 1, **{CRASH_ENV: "save.committed:2"})  # after the 2nd checkpoint
    code, _, err = finished(killed)
    assert code == -9, err[-3000:]
    study = optuna.load_study(study_name="shared", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.RUNNING]  # as the killed process left it
    client = MlflowClient(uri)
    (first,) = [r for r in study_runs(client) if PARENT_RUN_TAG in r.data.tags]

    time.sleep(4)  # past the heartbeat's grace period (3 s): the next worker fails the trial and retries it
    code, out, err = finished(start_worker(storage, uri, root, 1))
    assert code == 0, err[-3000:]
    study = optuna.load_study(study_name="shared", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    retry = study.trials[1]
    assert retry.system_attrs["retry_history"] == [0] and retry.params == study.trials[0].params
    assert out.split() == ["started", "1", "at", "6", "done", "1"]  # the retry began at the last checkpoint
    assert sorted(p.name for p in root.iterdir()) == ["trial-0"]  # the killed attempt's directory, no other
    saved = json.loads((root / "trial-0" / "elistimator.json").read_text())
    assert saved["tracking"]["run_id"] == first.info.run_id

    (run,) = [r for r in study_runs(client) if PARENT_RUN_TAG in r.data.tags]  # the same run, not a second one
    assert run.info.run_id == first.info.run_id == retry.user_attrs["elistimator:run_id"]
    assert run.info.status == "FINISHED" and run.data.tags[TRIAL_STATE_TAG] == "COMPLETE"
    assert run.data.tags[TRIAL_NUMBER_TAG] == "1" and run.data.tags[TRIAL_RETRIED_TAG] == "0"
    # what the killed process journaled and had not delivered yet, the retry delivered from its spool
    validation = history(client, run.info.run_id, "validation/loss")
    assert [s for s, _ in validation] == [3, 6, 9]  # continuous, each step once
    train = [s for s, _ in history(client, run.info.run_id, "train/loss")]
    assert train == sorted(set(train)) and train[-1] == 9, train  # every step once, the killed ones included
    assert stored_steps(client, run.info.run_id) == [3, 6, 9]
    assert retry.intermediate_values.keys() == {3, 6, 9}  # the pruner judged the whole curve
