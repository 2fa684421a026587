"""MLflow tracking against a real SQLite store: what a run holds, its lifecycle, bad input."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
from mlflow import MlflowClient

from conftest import blobs, dataset_fn, tiny_model_fn
from elistimator_tracking import Elistimator
from elistimator_tracking.tracking import TrackingWarning, sync
from elistimator_tracking.tracking.mlflow_tracker import MlflowTracker


@pytest.fixture
def store(tmp_path):
    return f"sqlite:///{tmp_path / 'store.db'}"


def train_epochs(est, epochs, save_first=True):
    for _ in range(epochs):
        est.train()
        if save_first:
            est.save_ckpt()
            est.validate()
        else:
            est.validate()
            est.save_ckpt()


def history(client, run_id, key):
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


def artifact_steps(client, run_id):
    return sorted(int(a.path.rsplit("-", 1)[1]) for a in client.list_artifacts(run_id, "checkpoints"))


def test_a_run_holds_params_tags_metrics_and_every_checkpoint(tmp_path, store, data):
    (x, y), (vx, vy) = data
    params = {"learning_rate": 0.5, "optimizer": {"name": "sgd", "api_key": "s3cr3t"}, "notes": "x" * 7000}
    with Elistimator(tiny_model_fn, tmp_path / "model", params=params, verbose=False, tracking=store,
                     run_name="first", tags={"team": "vision"}) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy), train_saver_args={"max_to_keep": 2})
        train_epochs(est, 4)
        est.evaluate(dataset_fn(vx, vy))
        run_id, step = est.run_id, est.global_step
    client = MlflowClient(store)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "first"
    assert client.get_experiment(run.info.experiment_id).name == "tiny_model_fn"
    p = run.data.params
    assert p["learning_rate"] == "0.5" and p["optimizer.name"] == "sgd" and p["optimizer.api_key"] == "<redacted>"
    assert len(p["notes"]) == 6000 and p["batch_size"] == "8" and p["saver.max_to_keep"] == "2"
    t = run.data.tags
    assert t["team"] == "vision" and t["tensorflow.version"] == "2.21.0" and t["mlflow.version"] == "3.17.2"
    assert t["elistimator.model_fn"] == "conftest.tiny_model_fn"
    assert t["elistimator.latest_step"] == "36" and t["elistimator.best_step"] in {"9", "18", "27", "36"}
    assert [s for s, _ in history(client, run_id, "validation/loss")] == [9, 18, 27, 36]
    assert [s for s, _ in history(client, run_id, "validation/accuracy")] == [9, 18, 27, 36]
    assert [s for s, _ in history(client, run_id, "train/loss")] == [10, 20, 30]
    assert [s for s, _ in history(client, run_id, "evaluation/loss")] == [step]
    assert artifact_steps(client, run_id) == [9, 18, 27, 36]  # pruned locally, all in the run
    assert {a.path for a in client.list_artifacts(run_id, "tensorboard")} == {"tensorboard/train",
                                                                            "tensorboard/validation"}
    metadata = json.loads((tmp_path / "model" / "elistimator.json").read_text())
    assert metadata["tracking"]["run_id"] == run_id and metadata["tracking"]["tracking_uri"] == store
    (spool,) = (tmp_path / "model" / "tracking").glob("store-*")
    assert not (spool / "journal.jsonl").exists() and not any((spool / "outbox").iterdir())  # all delivered


def test_a_logged_checkpoint_alone_restores_the_model(tmp_path, store, data):
    (x, y), (vx, vy) = data
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=store) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy), train_saver_args={"max_to_keep": 1})
        train_epochs(est, 2)
        expected = est.predict(x=vx)["probabilities"]
        est.train()  # a later step the artifact must not contain
        run_id = est.run_id
    shutil.rmtree(tmp_path / "model")
    local = MlflowClient(store).download_artifacts(run_id, "checkpoints/step-18", str(tmp_path / "download"))
    saved = json.loads((tmp_path / "download" / "step-18" / "elistimator.json").read_text())
    assert list(saved["checkpoints"]) == ["18"] and set(saved["validations"]["18"]) == {"accuracy", "loss"}
    assert set(saved["checkpoints"]["18"]["files"]) == {"model-18.index", "model-18.meta",
                                                         "model-18.data-00000-of-00001"}
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
        train_epochs(est, 2)
        run_id = est.run_id
    client = MlflowClient(store)
    assert client.get_run(run_id).info.status == "FINISHED"
    with Elistimator.from_disk(tmp_path / "model", verbose=False) as resumed:  # tracking=True: the recorded store
        resumed.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        assert resumed.run_id == run_id and client.get_run(run_id).info.status == "RUNNING"
        train_epochs(resumed, 2)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert [s for s, _ in history(client, run_id, "validation/loss")] == [9, 18, 27, 36]
    assert [s for s, _ in history(client, run_id, "train/loss")] == [10, 20, 30]
    assert artifact_steps(client, run_id) == [9, 18, 27, 36]
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
            train_epochs(est, 2)
            assert est.run_id is None
    messages = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(messages) == 2 and "notascheme://nowhere is behind" in messages[0]
    assert "could not be delivered" in messages[1] and str(tmp_path / "model" / "tracking") in messages[1]
    assert sync(tmp_path / "model", tracking_uri=store) == {store: 0}
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("tiny_model_fn").experiment_id])
    assert run.info.status == "FINISHED"
    assert [s for s, _ in history(client, run.info.run_id, "validation/loss")] == [9, 18]
    assert artifact_steps(client, run.info.run_id) == [9, 18]


def test_a_deleted_experiment_is_named_and_tracked_once_restored(tmp_path, store, data):
    (x, y), _ = data
    client = MlflowClient(store)
    client.delete_experiment(client.create_experiment("gone"))
    tracker = MlflowTracker(store, start_timeout=5, close_timeout=2)
    with pytest.warns(TrackingWarning, match="experiment 'gone' .* is deleted .*mlflow experiments restore"):
        with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=tracker,
                         experiment="gone") as est:
            est.setup(dataset_fn(x, y))
            est.train().save_ckpt()
    client.restore_experiment(client.get_experiment_by_name("gone").experiment_id)
    assert sync(tmp_path / "model") == {store: 0}
    (run,) = client.search_runs([client.get_experiment_by_name("gone").experiment_id])
    assert artifact_steps(client, run.info.run_id) == [9]


def test_a_run_the_store_no_longer_knows_gets_a_new_run(tmp_path, store, data):
    (x, y), (vx, vy) = data
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=store) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        train_epochs(est, 1)
        old = est.run_id
    client = MlflowClient(store)
    client.delete_run(old)
    with pytest.warns(TrackingWarning, match=f"run {old} .* not known .* new run"):
        with Elistimator.from_disk(tmp_path / "model", verbose=False) as resumed:
            resumed.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            train_epochs(resumed, 1)
            new = resumed.run_id
    assert new not in (None, old)
    assert [s for s, _ in history(client, new, "validation/loss")] == [18]
    assert json.loads((tmp_path / "model" / "elistimator.json").read_text())["tracking"]["run_id"] == new


def test_replaying_delivered_work_adds_nothing(tmp_path, store, data):
    """A crash between delivery and its acknowledgement replays the journal: no duplicates."""
    (x, y), (vx, vy) = data
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=store) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        train_epochs(est, 3)
        spool = next((tmp_path / "model" / "tracking").glob("store-*"))
        assert est.tracker.flush(timeout=30)
        journal = (spool / "journal.jsonl").read_text()
        run_id = est.run_id
    client = MlflowClient(store)
    before = {key: history(client, run_id, key) for key in ("train/loss", "validation/loss")}
    (spool / "journal.jsonl").write_text(journal)  # as if none of it had been acknowledged
    (spool / "delivered").write_text("0\n")
    assert sync(tmp_path / "model") == {store: 0}
    assert {key: history(client, run_id, key) for key in before} == before
    assert artifact_steps(client, run_id) == [9, 18, 27]
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1


def test_a_torn_journal_line_from_a_crash_is_cut_off(tmp_path):
    from elistimator_tracking.tracking.spool import Spool
    spool = Spool(tmp_path, "sqlite:///x.db")
    spool.append({"op": "metrics", "metrics": {"a": 1.0}, "step": 1, "timestamp": 1})
    with open(spool.path / "journal.jsonl", "a") as handle:
        handle.write('{"seq": 2, "op": "metr')
    reopened = Spool(tmp_path, "sqlite:///x.db")
    assert [op["seq"] for op in reopened.pending()] == [1]
    assert reopened.append({"op": "tags", "tags": {}})["seq"] == 2
    assert [op["seq"] for op in Spool(tmp_path, "sqlite:///x.db").pending()] == [1, 2]


class DiskFullOnce(MlflowTracker):
    """A real MLflow tracker whose outbox fails once, as on a full disk."""

    def outbox(self, name):
        if name == "step-9":
            raise OSError(28, "No space left on device")
        return super().outbox(name)


def test_one_failed_tracking_call_loses_only_itself(tmp_path, store, data):
    (x, y), (vx, vy) = data
    with pytest.warns(TrackingWarning, match="that tracking call is lost .*No space left on device"):
        with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=DiskFullOnce(store)) as est:
            est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            train_epochs(est, 2)
            run_id = est.run_id
    client = MlflowClient(store)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert artifact_steps(client, run_id) == [18]
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
            train_epochs(est, 1)
            assert est.tracker.flush(timeout=30)
            client.delete_run(est.run_id)
            train_epochs(est, 1)
    (spool,) = (tmp_path / "model" / "tracking").glob("store-*")
    assert not (spool / "journal.jsonl").exists()  # refused work is dropped, nothing waits behind it


def test_sync_to_another_store_moves_the_model_directory_there(tmp_path, store, data):
    (x, y), (vx, vy) = data
    tracker = MlflowTracker("notascheme://typo", start_timeout=2, close_timeout=2)
    with pytest.warns(TrackingWarning):
        with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=tracker) as est:
            est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            train_epochs(est, 1)
    assert sync(tmp_path / "model", tracking_uri=store) == {store: 0}
    recorded = json.loads((tmp_path / "model" / "elistimator.json").read_text())["tracking"]
    assert recorded["tracking_uri"] == store and recorded["run_id"]
    with Elistimator.from_disk(tmp_path / "model", verbose=False) as resumed:
        resumed.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        train_epochs(resumed, 1)
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
        other = threading.Thread(target=lambda: seen.update(
            other=(MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_TIMEOUT.get())))
        other.start()
        other.join()
    assert seen == {"inside": (0, 3), "other": defaults}
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "77")  # the user's own setting wins
    with bounded(timeout=3):
        assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 77
