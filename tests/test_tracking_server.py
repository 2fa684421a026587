"""Tracking through a real ``mlflow server`` on 127.0.0.1, killed and restarted mid-training."""

from __future__ import annotations

import shutil
import signal
import warnings

import numpy as np
import pytest
from conftest import dataset_fn, history, pending, stored_checkpoint, stored_steps, tiny_model_fn, train_epochs
from mlflow import MlflowClient
from mlflow_server import FlakyProxy, MlflowServer

from elistimator_tracking import Elistimator
from elistimator_tracking.tracking import TrackingWarning, sync
from elistimator_tracking.tracking.mlflow_tracker import MlflowTracker

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path):
    """A server of this test's own (to kill, or to start late)."""
    server = MlflowServer(tmp_path / "server")
    yield server
    server.stop()


def test_a_run_through_the_server_holds_everything_and_restores(tmp_path, shared_server, data):
    (x, y), (vx, vy) = data
    server = shared_server
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=server.uri) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        train_epochs(est, 2)
        expected = est.predict(x=vx)["classes"]
        run_id = est.run_id
    client = MlflowClient(server.uri)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert [s for s, _ in history(client, run_id, "validation/accuracy")] == [9, 18]
    assert stored_steps(client, run_id) == [9, 18]
    local = stored_checkpoint(client, run_id, 18, tmp_path / "download")
    with Elistimator.from_disk(local, tracking=False, verbose=False) as restored:
        np.testing.assert_array_equal(restored.predict(x=vx)["classes"], expected)


def test_killing_the_server_mid_training_loses_and_duplicates_nothing(tmp_path, server, data):
    (x, y), (vx, vy) = data
    server.start()
    tracker = MlflowTracker(server.uri, start_timeout=30, close_timeout=60, max_backoff=1)
    with pytest.warns(TrackingWarning, match="is behind"):
        with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=tracker) as est:
            est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            returned = train_epochs(est, 2)
            server.stop(signal.SIGKILL)  # whatever is in flight is cut off
            returned.update(train_epochs(est, 3))  # the store is gone: training goes on, tracking keeps it all
            assert any(p.stat().st_size for p in (tmp_path / "model" / "tracking").glob("store-*/journal.jsonl"))
            server.start()
            returned.update(train_epochs(est, 2))
            run_id = est.run_id
    client = MlflowClient(server.uri)
    steps = [9 * (i + 1) for i in range(7)]
    assert client.get_run(run_id).info.status == "FINISHED" and sorted(returned) == steps
    for name in ("loss", "accuracy"):
        assert history(client, run_id, f"validation/{name}") == [(s, m[name]) for s, m in returned.items()]
    assert [s for s, _ in history(client, run_id, "train/loss")] == list(range(10, 63, 10))
    assert stored_steps(client, run_id) == steps
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1


def test_work_done_while_the_store_was_unreachable_is_delivered_by_sync(tmp_path, shared_server, data):
    (x, y), (vx, vy) = data
    proxy = FlakyProxy(shared_server.port)  # the store's address, refusing connections for now
    proxy.down()
    tracker = MlflowTracker(proxy.uri, start_timeout=2, close_timeout=2)
    try:
        with pytest.warns(TrackingWarning, match="could not be delivered"):
            with Elistimator(
                tiny_model_fn, tmp_path / "model", verbose=False, tracking=tracker, experiment="unreachable-then-sync"
            ) as est:
                est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
                returned = train_epochs(est, 2)
        proxy.up()
        assert pending(sync(tmp_path / "model")) == {proxy.uri: 0}
    finally:
        proxy.close()
    client = MlflowClient(shared_server.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("unreachable-then-sync").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["batch_size"] == "8"
    assert history(client, run.info.run_id, "validation/loss") == [(s, m["loss"]) for s, m in returned.items()]
    assert stored_steps(client, run.info.run_id) == [9, 18]


def test_restore_and_registry_through_the_server(tmp_path, shared_server, data, monkeypatch):
    (x, y), (vx, vy) = data
    server = shared_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)  # models:/ and runs:/ resolve in this store
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, params={"learning_rate": 0.05}) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy), train_saver_args={"max_to_keep": 1})
        predictions = {}
        train_epochs(est, 2, each=lambda step: predictions.update({step: est.predict(x=vx)["probabilities"]}))
        version = est.register_best("served-model")
        run_id = est.run_id
    shutil.rmtree(tmp_path / "model")
    cache = tmp_path / "cache"
    for source in (f"runs:/{run_id}", "models:/served-model@champion", f"models:/served-model/{version}"):
        with Elistimator.from_disk(source, checkpoint="best", cache_dir=cache, verbose=False) as restored:
            np.testing.assert_allclose(
                restored.predict(x=vx)["probabilities"], predictions[restored.global_step], rtol=1e-6
            )
    with Elistimator.from_disk(f"runs:/{run_id}", checkpoint=9, cache_dir=cache, verbose=False) as first:
        np.testing.assert_allclose(first.predict(x=vx)["probabilities"], predictions[9], rtol=1e-6)
    with pytest.raises(LookupError, match="there is no run"):
        Elistimator.from_disk("runs:/0123456789abcdef0123456789abcdef", cache_dir=cache)
    with pytest.raises(LookupError, match="is not in the Model Registry"):
        Elistimator.from_disk("models:/served-model@challenger", cache_dir=cache)


def test_close_retries_at_once_after_one_dropped_connection(tmp_path, shared_server, data):
    """A connection dropped just as close() delivers the rest (a network blip, a restarted server)
    fails one attempt; close() tries again at once instead of giving up while the store answers."""
    (x, y), (vx, vy) = data
    proxy = FlakyProxy(shared_server.port)
    tracker = MlflowTracker(proxy.uri, start_timeout=30, close_timeout=30, max_backoff=30)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=tracker) as est:
                est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
                train_epochs(est, 1)
                assert tracker.flush(30)
                proxy.blip()  # the next request (the TensorBoard upload at close) fails
                run_id = est.run_id
    finally:
        proxy.close()
    assert not [w for w in caught if "could not be delivered" in str(w.message)]
    client = MlflowClient(shared_server.uri)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(run_id, "tensorboard")} == {
        "tensorboard/train",
        "tensorboard/validation",
    }
