"""What the store refuses: renamed or reported one by one, never a lost batch, never a retry loop."""

from __future__ import annotations

import pytest
from conftest import dataset_fn, pending, tiny_model_fn
from mlflow import MlflowClient

from elistimator_tracking import Elistimator
from elistimator_tracking.tracking import TrackingWarning


def trained(model_dir, store, data, **options) -> Elistimator:
    (x, y), (vx, vy) = data
    with Elistimator(tiny_model_fn, model_dir, verbose=False, tracking=store, **options) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        est.train().validate()
        est.save_ckpt()
    return est


def tracking_warnings(caught) -> list:
    return [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]


def journal_left(model_dir) -> list:
    return [str(p) for p in (model_dir / "tracking").glob("store-*/journal.jsonl")]


def test_one_bad_or_colliding_param_key_never_drops_the_others(tmp_path, data):
    store = f"sqlite:///{tmp_path / 'store.db'}"
    params = {"": 1, "a.b": 2, "a": {"b": 3}, "x" * 300: 4, "x" * 300 + "y": 5, "learning_rate": 0.5}
    with pytest.warns(TrackingWarning) as caught:
        est = trained(tmp_path / "model", store, data, params=params)
    (note,) = [m for m in tracking_warnings(caught) if "params logged under other names" in m]
    assert "'' as '_'" in note and "'a.b' as 'a.b-2'" in note
    logged = MlflowClient(store).get_run(est.run_id).data.params
    assert logged["_"] == "1" and logged["a.b"] == "2" and logged["a.b-2"] == "3" and logged["learning_rate"] == "0.5"
    long = sorted((key for key in logged if key.startswith("xxx")), key=logged.get)
    assert [logged[key] for key in long] == ["4", "5"] and all(len(key) <= 250 for key in long)
    assert journal_left(tmp_path / "model") == []


def test_values_the_store_refuses_are_reported_once_each_and_never_spooled(tmp_path, data):
    store = f"sqlite:///{tmp_path / 'store.db'}"
    with pytest.warns(TrackingWarning) as caught:  # batch_size: 32 given, the data's batches hold 8
        est = trained(
            tmp_path / "model",
            store,
            data,
            params={"batch_size": 32, "learning_rate": 0.5},
            tags={"bad tag!": "x", "team": "vision"},
        )
    refused = [m for m in tracking_warnings(caught) if "refused" in m]
    assert len(refused) == 2
    assert any("param 'batch_size'" in m for m in refused) and any("tag 'bad tag!'" in m for m in refused)
    run = MlflowClient(store).get_run(est.run_id)
    assert run.data.params["batch_size"] == "32" and run.data.params["learning_rate"] == "0.5"
    assert run.data.tags["team"] == "vision" and run.info.status == "FINISHED"
    assert journal_left(tmp_path / "model") == []


def test_an_experiment_name_the_store_refuses_is_one_warning_not_a_retry_loop(tmp_path, data):
    store = f"sqlite:///{tmp_path / 'store.db'}"
    with pytest.warns(TrackingWarning) as caught:
        est = trained(tmp_path / "model", store, data, experiment="e" * 5000)
    (message,) = tracking_warnings(caught)
    assert "refused to create the run" in message and "500" in message
    assert est.run_id is None and journal_left(tmp_path / "model") == []
    assert MlflowClient(store).search_experiments(filter_string="name != 'Default'") == []


def test_a_run_deleted_mid_training_is_one_warning_and_its_later_work_is_dropped(tmp_path, data):
    (x, y), (vx, vy) = data
    store = f"sqlite:///{tmp_path / 'store.db'}"
    client = MlflowClient(store)
    with pytest.warns(TrackingWarning) as caught:
        with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=store) as est:
            est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            est.train().validate()
            assert est.tracker.flush(timeout=30)
            client.delete_run(est.run_id)
            for _ in range(2):
                est.train().validate()
                est.save_ckpt()
    (message,) = tracking_warnings(caught)
    assert f"the run {est.run_id} is deleted or unknown there" in message
    assert journal_left(tmp_path / "model") == []


def test_work_for_a_run_the_store_never_created_is_dropped_not_retried_forever(tmp_path):
    """A process that died right after the store refused its run left the run's later work behind."""
    from elistimator_tracking.tracking import sync
    from elistimator_tracking.tracking.journal.ops import Finish, Metrics
    from elistimator_tracking.tracking.journal.spool import Spool

    store = f"sqlite:///{tmp_path / 'store.db'}"
    spool = Spool(tmp_path / "model" / "tracking", store)
    spool.append(Metrics(run="refused-run", metrics={"validation/loss": 0.5}, step=9, timestamp=1))
    spool.append(Finish(run="refused-run", status="FINISHED", error=None))
    spool.close()
    with pytest.warns(TrackingWarning, match="holds no run for this work") as caught:
        assert pending(sync(tmp_path / "model")) == {store: 0}
    assert len(tracking_warnings(caught)) == 1 and journal_left(tmp_path / "model") == []
