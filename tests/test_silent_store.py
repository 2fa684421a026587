"""A store that accepts connections and never answers: setup() and close() wait only their bounds."""

from __future__ import annotations

import pytest
from conftest import dataset_fn, pending, tiny_model_fn
from mlflow import MlflowClient
from silent_server import SilentServer

from elistimator_tracking import Elistimator
from elistimator_tracking.tracking import TrackingWarning, sync


def test_a_store_that_never_answers_is_named_during_setup_and_its_work_is_kept(tmp_path, data):
    (x, y), (vx, vy) = data
    store = f"sqlite:///{tmp_path / 'store.db'}"
    with SilentServer() as silent:
        est = Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=silent.uri)
        with pytest.warns(
            TrackingWarning,
            match=rf"tracking to {silent.uri} is behind: the store did not answer "
            r"within 5 s\. Training goes on",
        ):
            est.setup(dataset_fn(x, y), dataset_fn(vx, vy))  # the first warning comes while setup() waits
        assert est.run_id is None and silent.connections
        est.train().validate()
        est.save_ckpt()
        with pytest.warns(
            TrackingWarning,
            match=rf"could not be delivered to {silent.uri} \(the store did not "
            r"answer within 5 s\); they are kept in",
        ):
            est.close()  # waits while the store answers: it never does
    assert pending(sync(tmp_path / "model", tracking_uri=store)) == {store: 0}
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("Default").experiment_id])
    assert run.info.status == "FINISHED" and [
        m.step for m in client.get_metric_history(run.info.run_id, "validation/loss")
    ] == [9]
