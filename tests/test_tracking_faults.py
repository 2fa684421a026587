"""Faults of the tracking journal met in the field, each reproduced with a real training whose store
was away (its journal kept in the model directory), then a resumed training or ``sync`` once the
store is back: a damaged mark, index or store file, bytes that are not UTF-8, a line a newer
version wrote. Tracking never turns off, nothing is lost, the file is named."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from conftest import dataset_fn, history, pending, stored_steps, tiny_model_fn, train_epochs
from mlflow import MlflowClient

from elistimator_tracking import Elistimator, TrackingWarning
from elistimator_tracking.tracking import sync
from elistimator_tracking.tracking.mlflow_tracker import MlflowTracker


@pytest.fixture
def kept(tmp_path, data):
    """A model directory whose training (two epochs) found its SQLite store unreachable: its whole
    journal is kept. The store's folder is a file then; the test makes it a folder (the store back)."""
    (x, y), (vx, vy) = data
    blocker = tmp_path / "store"
    blocker.write_text("not a folder: the store cannot be opened")
    store = f"sqlite:///{blocker / 'mlflow.db'}"
    tracker = MlflowTracker(store, start_timeout=1, close_timeout=1, max_backoff=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrackingWarning)
        with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=tracker) as est:
            est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            train_epochs(est, 2)
    blocker.unlink()
    blocker.mkdir()
    (spool,) = (tmp_path / "model" / "tracking").glob("store-*")
    assert (spool / "journal.jsonl").stat().st_size > 0
    return tmp_path / "model", store, spool


def resume_and_train(model_dir: Path, data, store: str) -> str:
    """A new session in the directory (its recorded store), one more epoch; returns the run id."""
    (x, y), (vx, vy) = data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TrackingWarning)
        with Elistimator.from_disk(model_dir, verbose=False) as est:
            est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            train_epochs(est, 1)
    assert not [w for w in caught if "tracking is off" in str(w.message)], [str(w.message) for w in caught]
    record = json.loads((model_dir / "elistimator.json").read_text())["tracking"]
    assert record["tracking_uri"] == store
    return record["run_id"]


def assert_whole(store: str, run_id: str, steps=(9, 18, 27)) -> None:
    client = MlflowClient(store)
    assert [s for s, _ in history(client, run_id, "validation/loss")] == list(steps)
    assert stored_steps(client, run_id) == list(steps)


@pytest.mark.parametrize("damage", [b"garbage", b"\xff\xfe", b""])
def test_a_damaged_delivered_mark_never_turns_tracking_off(kept, data, damage):
    model_dir, store, spool = kept
    (spool / "delivered").write_bytes(damage)
    assert_whole(store, resume_and_train(model_dir, data, store))


def test_a_damaged_run_index_is_rebuilt_and_the_run_found_again(kept, data):
    model_dir, store, spool = kept
    assert pending(sync(model_dir)) == {store: 0}  # delivered: the run exists, runs.json names it
    (spool / "runs.json").write_text("{not json")
    run_id = resume_and_train(model_dir, data, store)
    assert_whole(store, run_id)
    assert len(MlflowClient(store).search_runs([MlflowClient(store).get_run(run_id).info.experiment_id])) == 1


@pytest.mark.parametrize(
    "line",
    [
        b"\xff garbage",
        b'{"seq": 999, "run": "x", "op": "metrics_v2", "metrics": {}}',
        b'{"seq": 998, "run": "x", "op": "tags", "tags": {}, "commit": {"kind": "validation_v2", "step": 1}}',
    ],
)
def test_a_line_a_resumed_training_cannot_read_is_quarantined_and_tracking_goes_on(kept, data, line):
    model_dir, store, spool = kept
    journal = spool / "journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:3]) + line + b"\n" + b"".join(lines[3:]))
    assert_whole(store, resume_and_train(model_dir, data, store))
    assert (spool / "quarantine.jsonl").is_file()


def test_a_damaged_store_file_is_rebuilt_from_the_model_directorys_record(kept):
    model_dir, store, spool = kept
    (spool / "store.json").write_text("\x00garbage")
    with pytest.warns(TrackingWarning, match="store.json is damaged; rebuilt"):
        assert pending(sync(model_dir)) == {store: 0}
    run_id = json.loads((model_dir / "elistimator.json").read_text())["tracking"]["run_id"]
    assert_whole(store, run_id, steps=(9, 18))
