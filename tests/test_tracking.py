"""MLflow tracking against a real SQLite store: what a run holds, its lifecycle, bad input."""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import best_of, dataset_fn, history, pending, stored_checkpoint, stored_steps, tiny_model_fn, train_epochs
from mlflow import MlflowClient

from elistimator_tracking import Elistimator
from elistimator_tracking._faults import CRASH_ENV
from elistimator_tracking.tracking import Tracker, TrackingWarning, sync
from elistimator_tracking.tracking.mlflow_tracker import MlflowTracker


def tensorflow_version() -> str:
    from elistimator_tracking._tf import tf

    return tf.__version__  # the installed one: CI's constraints, or the lowest tested


@pytest.fixture
def store(tmp_path):
    return f"sqlite:///{tmp_path / 'store.db'}"


def test_a_run_holds_params_tags_metrics_and_every_checkpoint(tmp_path, store, data):
    (x, y), (vx, vy) = data
    secrets = {
        "api_key": "s3cr3t",
        "db_password": "pw",
        "passwd": "pw",
        "auth_token": "t",
        "client_secret": "s",
        "aws_credentials": "c",
        "API-Key": "k",
    }
    params = {"learning_rate": 0.5, "optimizer": {"name": "sgd", **secrets}, "notes": "x" * 7000}
    with Elistimator(
        tiny_model_fn,
        tmp_path / "model",
        params=params,
        verbose=False,
        tracking=store,
        run_name="first",
        tags={"team": "vision"},
    ) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy), train_saver_args={"max_to_keep": 2})
        returned = train_epochs(est, 4, save_first=True)
        evaluated = est.evaluate(dataset_fn(vx, vy))
        run_id, step = est.run_id, est.global_step
    client = MlflowClient(store)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "first"
    assert client.get_experiment(run.info.experiment_id).name == "Default"  # none named: MLflow's own
    p = run.data.params
    assert p["learning_rate"] == "0.5" and p["optimizer.name"] == "sgd"
    assert {key: p[f"optimizer.{key}"] for key in secrets} == dict.fromkeys(secrets, "<redacted>")
    assert len(p["notes"]) == 6000 and p["batch_size"] == "8" and p["saver.max_to_keep"] == "2"
    t = run.data.tags
    assert t["team"] == "vision" and t["mlflow.version"] == mlflow.__version__
    assert t["tensorflow.version"] == tensorflow_version()
    assert t["elistimator.model_fn"] == "conftest.tiny_model_fn"
    assert t["elistimator.latest_step"] == "36" and t["elistimator.best_step"] == str(best_of(returned))
    for name in ("loss", "accuracy"):
        assert history(client, run_id, f"validation/{name}") == [(s, m[name]) for s, m in returned.items()]
        assert history(client, run_id, f"evaluation/{name}") == [(step, evaluated[name])]
    assert [s for s, _ in history(client, run_id, "train/loss")] == [10, 20, 30]
    assert stored_steps(client, run_id) == [9, 18, 27, 36]  # pruned locally, all in the run
    assert {a.path for a in client.list_artifacts(run_id, "tensorboard")} == {
        "tensorboard/train",
        "tensorboard/validation",
    }
    metadata = json.loads((tmp_path / "model" / "elistimator.json").read_text())
    assert metadata["tracking"]["run_id"] == run_id and metadata["tracking"]["tracking_uri"] == store
    (spool,) = (tmp_path / "model" / "tracking").glob("store-*")
    assert not (spool / "journal.jsonl").exists() and not any((spool / "outbox").iterdir())  # all delivered


def test_a_logged_checkpoint_alone_restores_the_model(tmp_path, store, data):
    (x, y), (vx, vy) = data
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=store) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy), train_saver_args={"max_to_keep": 1})
        train_epochs(est, 2, save_first=True)
        expected = est.predict(x=vx)["probabilities"]
        est.train()  # a later step the artifact must not contain
        run_id = est.run_id
    shutil.rmtree(tmp_path / "model")
    local = stored_checkpoint(MlflowClient(store), run_id, 18, tmp_path / "download")
    saved = json.loads((local / "elistimator.json").read_text())
    assert list(saved["checkpoints"]) == ["18"] and set(saved["validations"]["18"]) == {"accuracy", "loss"}
    assert set(saved["checkpoints"]["18"]["files"]) == {
        "model-18.index",
        "model-18.meta",
        "model-18.data-00000-of-00001",
    }
    with Elistimator.from_disk(local, tracking=False, verbose=False) as restored:
        assert restored.global_step == 18
        np.testing.assert_allclose(restored.predict(x=vx)["probabilities"], expected)
        assert restored.checkpoints[18]["metrics"] == saved["validations"]["18"]


def test_an_exception_in_the_with_block_fails_the_run_with_the_error(tmp_path, store, data):
    (x, y), _ = data
    with pytest.raises(RuntimeError, match="diverged"):
        with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=store) as est:
            est.setup(dataset_fn(x, y))
            est.train(steps=3)
            raise RuntimeError("the loss diverged")
    run = MlflowClient(store).get_run(est.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["elistimator.error"] == "RuntimeError: the loss diverged"


def test_ctrl_c_kills_the_run(tmp_path, store, data):
    (x, y), _ = data
    with pytest.raises(KeyboardInterrupt):
        with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=store) as est:
            est.setup(dataset_fn(x, y))
            raise KeyboardInterrupt
    assert MlflowClient(store).get_run(est.run_id).info.status == "KILLED"


def test_from_disk_and_setup_resume_the_same_run(tmp_path, store, data):
    (x, y), (vx, vy) = data
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=store) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        train_epochs(est, 2, save_first=True)
        run_id = est.run_id
    client = MlflowClient(store)
    assert client.get_run(run_id).info.status == "FINISHED"
    with Elistimator.from_disk(tmp_path / "model", verbose=False) as resumed:  # tracking=True: the recorded store
        resumed.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        assert resumed.run_id == run_id and client.get_run(run_id).info.status == "RUNNING"
        train_epochs(resumed, 2, save_first=True)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert [s for s, _ in history(client, run_id, "validation/loss")] == [9, 18, 27, 36]
    assert [s for s, _ in history(client, run_id, "train/loss")] == [10, 20, 30]
    assert stored_steps(client, run_id) == [9, 18, 27, 36]
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1


def test_tracking_false_touches_no_store(tmp_path, data):
    (x, y), _ = data
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=False) as est:
        est.setup(dataset_fn(x, y))
        est.train().save_ckpt()
        assert est.run_id is None
    assert not (tmp_path / "model" / "tracking").exists()
    assert json.loads((tmp_path / "model" / "elistimator.json").read_text())["tracking"] is None


@pytest.mark.parametrize("bad", [3, "", "   "])
def test_a_wrong_tracking_argument_is_refused(tmp_path, bad):
    with pytest.raises(TypeError, match="tracking must be True, False, a tracking URI"):
        Elistimator(tiny_model_fn, tmp_path / "model", tracking=bad)


def test_a_malformed_uri_warns_once_trains_and_keeps_everything_for_sync(tmp_path, store, data):
    (x, y), (vx, vy) = data
    tracker = MlflowTracker("notascheme://nowhere", start_timeout=5, close_timeout=5)
    with pytest.warns(TrackingWarning) as caught:
        with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=tracker) as est:
            est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            train_epochs(est, 2, save_first=True)
            assert est.run_id is None
    messages = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(messages) == 2 and "notascheme://nowhere is behind" in messages[0]
    assert "could not be delivered" in messages[1] and str(tmp_path / "model" / "tracking") in messages[1]
    assert pending(sync(tmp_path / "model", tracking_uri=store)) == {store: 0}
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("Default").experiment_id])
    assert run.info.status == "FINISHED"
    assert [s for s, _ in history(client, run.info.run_id, "validation/loss")] == [9, 18]
    assert stored_steps(client, run.info.run_id) == [9, 18]


def test_a_run_without_an_experiment_goes_where_mlflow_puts_one(tmp_path, store, data, monkeypatch):
    """Issue 28: runs landed in experiments named after each model function (``cnn_model_fn``,
    ``model_fn``); now MLflow's rule: $MLFLOW_EXPERIMENT_NAME, else the Default experiment."""
    (x, y), (vx, vy) = data
    client = MlflowClient(store)
    for name, variable in (("Default", None), ("team-mnist", "team-mnist")):
        if variable is None:
            monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
        else:
            monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", variable)
        with Elistimator(tiny_model_fn, tmp_path / name, verbose=False, tracking=store) as est:
            est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            train_epochs(est, 1)
            run_id = est.run_id
        assert client.get_experiment(client.get_run(run_id).info.experiment_id).name == name
    assert client.get_experiment_by_name("tiny_model_fn") is None


def test_a_deleted_experiment_is_named_and_tracked_once_restored(tmp_path, store, data):
    (x, y), _ = data
    client = MlflowClient(store)
    client.delete_experiment(client.create_experiment("gone"))
    tracker = MlflowTracker(store, start_timeout=5, close_timeout=2)
    with pytest.warns(TrackingWarning, match="experiment 'gone' .* is deleted .*mlflow experiments restore"):
        with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=tracker, experiment="gone") as est:
            est.setup(dataset_fn(x, y))
            est.train().save_ckpt()
    client.restore_experiment(client.get_experiment_by_name("gone").experiment_id)
    assert pending(sync(tmp_path / "model")) == {store: 0}
    (run,) = client.search_runs([client.get_experiment_by_name("gone").experiment_id])
    assert stored_steps(client, run.info.run_id) == [9]


def test_a_run_the_store_no_longer_knows_gets_a_new_run(tmp_path, store, data):
    (x, y), (vx, vy) = data
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=store) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        train_epochs(est, 1, save_first=True)
        old = est.run_id
    client = MlflowClient(store)
    client.delete_run(old)
    with pytest.warns(TrackingWarning, match=f"run {old} .* not known .* new run"):
        with Elistimator.from_disk(tmp_path / "model", verbose=False) as resumed:
            resumed.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            train_epochs(resumed, 1, save_first=True)
            new = resumed.run_id
    assert new not in (None, old)
    assert [s for s, _ in history(client, new, "validation/loss")] == [18]
    assert json.loads((tmp_path / "model" / "elistimator.json").read_text())["tracking"]["run_id"] == new


def test_replaying_delivered_work_adds_nothing(tmp_path, store, data):
    """A crash between delivery and its acknowledgement replays the journal: no duplicates."""
    (x, y), (vx, vy) = data
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=store) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        train_epochs(est, 3, save_first=True)
        spool = next((tmp_path / "model" / "tracking").glob("store-*"))
        assert est.tracker.flush(timeout=30)
        journal = (spool / "journal.jsonl").read_text()
        run_id = est.run_id
    client = MlflowClient(store)
    before = {key: history(client, run_id, key) for key in ("train/loss", "validation/loss")}
    (spool / "journal.jsonl").write_text(journal)  # as if none of it had been acknowledged
    (spool / "delivered").write_text("0\n")
    assert pending(sync(tmp_path / "model")) == {store: 0}
    assert {key: history(client, run_id, key) for key in before} == before
    assert stored_steps(client, run_id) == [9, 18, 27]
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1


class DiskFullOnce(MlflowTracker):
    """A real MLflow tracker whose outbox fails once, as on a full disk."""

    def outbox(self, name):
        if name == "model-step-9":
            raise OSError(28, "No space left on device")
        return super().outbox(name)


def test_one_failed_tracking_call_loses_only_itself(tmp_path, store, data):
    (x, y), (vx, vy) = data
    with pytest.warns(TrackingWarning, match="that tracking call is lost .*No space left on device"):
        with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=DiskFullOnce(store)) as est:
            est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            train_epochs(est, 2, save_first=True)
            run_id = est.run_id
    client = MlflowClient(store)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert stored_steps(client, run_id) == [18]
    assert [s for s, _ in history(client, run_id, "validation/loss")] == [9, 18]


def test_metric_names_mlflow_refuses_are_made_acceptable(tmp_path, store, data):
    (x, y), (vx, vy) = data

    def model_fn(features, is_training, params):
        train, evaluation, predict = tiny_model_fn(features, is_training, params)
        evaluation.metric_ops["acc@top(1)"] = evaluation.metric_ops.pop("accuracy")
        return train, evaluation, predict

    with Elistimator(model_fn, tmp_path / "model", verbose=False, tracking=store, params={"lr@start": 0.5}) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        assert "acc@top(1)" in est.train().validate()
        run_id = est.run_id
    run = MlflowClient(store).get_run(run_id)
    assert "validation/acc_top_1_" in run.data.metrics and run.data.params["lr_start"] == "0.5"


def test_a_run_deleted_mid_training_does_not_block_tracking(tmp_path, store, data):
    (x, y), (vx, vy) = data
    client = MlflowClient(store)
    with pytest.warns(TrackingWarning, match="refused a .* operation and it is dropped"):
        with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=store) as est:
            est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            train_epochs(est, 1, save_first=True)
            assert est.tracker.flush(timeout=30)
            client.delete_run(est.run_id)
            train_epochs(est, 1, save_first=True)
    (spool,) = (tmp_path / "model" / "tracking").glob("store-*")
    assert not (spool / "journal.jsonl").exists()  # refused work is dropped, nothing waits behind it


def test_sync_to_another_store_moves_the_model_directory_there(tmp_path, store, data):
    (x, y), (vx, vy) = data
    tracker = MlflowTracker("notascheme://typo", start_timeout=2, close_timeout=2)
    with pytest.warns(TrackingWarning):
        with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=tracker) as est:
            est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            train_epochs(est, 1, save_first=True)
    assert pending(sync(tmp_path / "model", tracking_uri=store)) == {store: 0}
    recorded = json.loads((tmp_path / "model" / "elistimator.json").read_text())["tracking"]
    assert recorded["tracking_uri"] == store and recorded["run_id"]
    with Elistimator.from_disk(tmp_path / "model", verbose=False) as resumed:
        resumed.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        train_epochs(resumed, 1, save_first=True)
        assert resumed.run_id == recorded["run_id"]
    assert [s for s, _ in history(MlflowClient(store), recorded["run_id"], "validation/loss")] == [9, 18]


def test_tracking_to_a_server_leaves_the_users_mlflow_settings_alone(tmp_path, data, monkeypatch):
    """No MLFLOW_HTTP_* variable is set; the package's own bounds hold for its own thread only."""
    import threading

    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT

    from elistimator_tracking.tracking.http_limits import bounded

    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    defaults = (MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_TIMEOUT.get())
    (x, y), _ = data
    tracker = MlflowTracker("http://127.0.0.1:9", start_timeout=1, close_timeout=1)  # nothing listens there
    with pytest.warns(TrackingWarning):
        with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=tracker) as est:
            est.setup(dataset_fn(x, y))
            est.train().save_ckpt()
    import os

    assert not {k for k in os.environ if k.startswith("MLFLOW_HTTP_REQUEST")}
    assert (MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_TIMEOUT.get()) == defaults
    seen = {}
    with bounded(timeout=3):
        seen["inside"] = (MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_TIMEOUT.get())
        other = threading.Thread(
            target=lambda: seen.update(other=(MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_TIMEOUT.get()))
        )
        other.start()
        other.join()
    assert seen == {"inside": (0, 3), "other": defaults}
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "77")  # the user's own setting wins
    with bounded(timeout=3):
        assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 77


def test_the_next_run_in_the_model_directory_delivers_what_the_last_one_kept(tmp_path, data):
    """README: undelivered work "is sent by the next run in that model directory" (no sync needed)."""
    (x, y), (vx, vy) = data
    blocker = tmp_path / "store"  # a file where the store's folder must be: the store cannot be opened
    blocker.write_text("")
    store = f"sqlite:///{blocker / 'mlflow.db'}"
    with pytest.warns(TrackingWarning, match="could not be delivered"):
        with Elistimator(
            tiny_model_fn,
            tmp_path / "model",
            verbose=False,
            tracking=MlflowTracker(store, start_timeout=1, close_timeout=1),
        ) as est:
            est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            returned = train_epochs(est, 2)
    blocker.unlink()  # the store is back
    with Elistimator.from_disk(tmp_path / "model", verbose=False) as resumed:  # to the store it recorded
        resumed.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        returned.update(train_epochs(resumed, 1))
        run_id = resumed.run_id
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("Default").experiment_id])
    assert run.info.run_id == run_id and run.info.status == "FINISHED" and run.data.params["batch_size"] == "8"
    assert history(client, run_id, "validation/loss") == [(s, m["loss"]) for s, m in returned.items()]
    assert stored_steps(client, run_id) == [9, 18, 27]


RUN_CREATED_THEN_KILLED = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from conftest import blobs, dataset_fn, tiny_model_fn, train_epochs
from elistimator_tracking import Elistimator
from elistimator_tracking.tracking.mlflow_tracker import MlflowTracker
blocker = Path({blocker!r})
tracker = MlflowTracker("sqlite:///" + str(blocker / "mlflow.db"), start_timeout=0.5, max_backoff=0.5)
est = Elistimator(tiny_model_fn, {model_dir!r}, verbose=False, tracking=tracker)
est.setup(dataset_fn(*blobs(70)), dataset_fn(*blobs(30, seed=1)))
print({{step: m["loss"] for step, m in train_epochs(est, 2).items()}}, flush=True)
blocker.unlink()  # the store answers: the run is created, and the crash point kills us before we note its id
tracker.flush(60)
print("not killed", flush=True)
"""


def test_a_run_created_just_before_a_crash_is_found_again_by_its_run_key(tmp_path, data):
    """A process killed after the store created its run but before the journal recorded the run id:
    the replay finds that run by its elistimator.run_key tag instead of creating a second one."""
    (x, y), (vx, vy) = data
    blocker = tmp_path / "store"
    blocker.write_text("")
    store = f"sqlite:///{blocker / 'mlflow.db'}"
    script = RUN_CREATED_THEN_KILLED.format(
        tests=str(Path(__file__).parent), blocker=str(blocker), model_dir=str(tmp_path / "model")
    )
    env = {**os.environ, CRASH_ENV: "tracking.run_created", "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr[-2000:]
    losses = ast.literal_eval(done.stdout.splitlines()[0])
    client = MlflowClient(store)
    (created,) = client.search_runs([client.get_experiment_by_name("Default").experiment_id])
    assert created.info.status == "RUNNING" and not client.get_metric_history(created.info.run_id, "validation/loss")
    with Elistimator.from_disk(tmp_path / "model", verbose=False) as resumed:
        resumed.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        losses.update({s: m["loss"] for s, m in train_epochs(resumed, 1).items()})
        assert resumed.run_id == created.info.run_id
    (run,) = client.search_runs([created.info.experiment_id])
    assert run.info.run_id == created.info.run_id and run.info.status == "FINISHED"
    assert history(client, run.info.run_id, "validation/loss") == sorted(losses.items())
    assert stored_steps(client, run.info.run_id) == [9, 18, 27]


@pytest.mark.parametrize("code, status", [(0, "FINISHED"), (None, "FINISHED"), (3, "KILLED")])
def test_sys_exit_in_the_with_block_ends_the_run_by_its_code(tmp_path, store, data, code, status):
    (x, y), _ = data
    with pytest.raises(SystemExit):
        with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=store) as est:
            est.setup(dataset_fn(x, y))
            sys.exit(code)
    run = MlflowClient(store).get_run(est.run_id)
    assert run.info.status == status
    assert run.data.tags.get("elistimator.error") == (None if status == "FINISHED" else "SystemExit")


MODEL_IN_A_REPOSITORY = """
from conftest import tiny_model_fn


def repo_model_fn(features, is_training, params):
    return tiny_model_fn(features, is_training, params)
"""


def test_runs_are_tagged_with_versions_the_model_function_and_its_git_commit(tmp_path, store, data):
    import importlib.util
    import platform

    import mlflow

    import elistimator_tracking
    from elistimator_tracking._tf import tf

    (x, y), _ = data
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "repo_model.py").write_text(MODEL_IN_A_REPOSITORY)

    def git(*args):
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
            cwd=repo,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    git("add", "repo_model.py")
    git("commit", "-qm", "model")
    spec = importlib.util.spec_from_file_location("repo_model", repo / "repo_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tags = {}
    for dirty in (False, True):
        if dirty:
            (repo / "repo_model.py").write_text(MODEL_IN_A_REPOSITORY + "# changed\n")
        with Elistimator(module.repo_model_fn, tmp_path / f"model-{dirty}", verbose=False, tracking=store) as est:
            est.setup(dataset_fn(x, y))
            run_id = est.run_id
        tags[dirty] = MlflowClient(store).get_run(run_id).data.tags
    expected = {
        "elistimator.version": elistimator_tracking.__version__,
        "tensorflow.version": tf.__version__,
        "mlflow.version": mlflow.__version__,
        "python.version": platform.python_version(),
        "elistimator.model_fn": "repo_model.repo_model_fn",
        "mlflow.source.git.commit": git("rev-parse", "HEAD"),
    }
    for dirty in (False, True):
        assert {k: tags[dirty].get(k) for k in expected} == expected
        assert tags[dirty]["git.dirty"] == str(dirty).lower()


class ListTracker(Tracker):
    """Another backend, as a user would plug one in: it keeps what it is told."""

    def __init__(self, outboxes: Path):
        self.outboxes, self.calls = outboxes, []

    def start(self, spool_root, run, run_name=None, tags=None, local=None):
        self.calls.append(("start", run.experiment, run_name))

    def log_params(self, params):
        self.calls.append(("params", dict(params)))

    def set_tags(self, tags):
        self.calls.append(("tags", dict(tags)))

    def log_metrics(self, metrics, step):
        self.calls.append(("metrics", step, dict(metrics)))

    def outbox(self, name):
        directory = self.outboxes / f"{name}-{len(self.calls)}"
        directory.mkdir(parents=True)
        return directory

    def log_artifacts(self, directory, artifact_path):
        self.calls.append(("artifacts", artifact_path, sorted(p.name for p in Path(directory).rglob("*.index"))))

    def log_checkpoint_model(self, directory, step, files, metadata_only=False):
        self.calls.append(("checkpoint", step, sorted(p.name for p in Path(directory).rglob("*.index"))))

    def finish(self, status, error=None):
        self.calls.append(("finish", status, error))

    def register(self, step, model_dir, name, alias, tags, run_id=None):
        raise NotImplementedError


def test_a_tracker_object_plugs_in_another_backend(tmp_path, data):
    (x, y), (vx, vy) = data
    tracker = ListTracker(tmp_path / "outboxes")
    with Elistimator(
        tiny_model_fn,
        tmp_path / "model",
        params={"learning_rate": 0.5},
        verbose=False,
        tracking=tracker,
        experiment="elsewhere",
        run_name="mine",
    ) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        returned = train_epochs(est, 2)
    calls = tracker.calls
    kinds = [c[0] for c in calls]
    assert calls[0] == ("start", "elsewhere", "mine") and calls[-1] == ("finish", "FINISHED", None)
    params = {k: v for c in calls if c[0] == "params" for k, v in c[1].items()}
    assert params["learning_rate"] == "0.5" and params["batch_size"] == "8" and params["saver.max_to_keep"] == "5"
    validations = {c[1]: c[2] for c in calls if c[0] == "metrics" and "validation/loss" in c[2]}
    assert validations == {s: {f"validation/{k}": v for k, v in m.items()} for s, m in returned.items()}
    assert [c[1:] for c in calls if c[0] == "artifacts"] == [("source", []), ("tensorboard", [])]  # the model_fn's file
    assert [c[1:] for c in calls if c[0] == "checkpoint"] == [(9, ["model-9.index"]), (18, ["model-18.index"])]
    assert {c[1]["elistimator.latest_step"] for c in calls if c[0] == "tags"} == {"9", "18"}
    assert kinds.count("start") == 1


def test_close_waits_a_bounded_time_for_a_store_that_does_not_answer(tmp_path, data, monkeypatch):
    """README: close() waits for delivery at most 60 s (here 1 s); what is left stays in the journal."""
    import socket
    import threading

    (x, y), _ = data
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")  # the store holds every request open
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections are accepted by the kernel and never answered
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        assert MlflowTracker(uri).close_timeout == 60
        tracker = MlflowTracker(uri, start_timeout=1, close_timeout=1)
        with pytest.warns(TrackingWarning, match=r"could not be delivered .*the store did not answer in time"):
            with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=tracker) as est:
                est.setup(dataset_fn(x, y))
                est.train().save_ckpt()
        assert any(t.name == "elistimator-tracking" and t.is_alive() for t in threading.enumerate())  # still waiting
    (spool,) = (tmp_path / "model" / "tracking").glob("store-*")
    assert '"op":"finish"' in (spool / "journal.jsonl").read_text()
