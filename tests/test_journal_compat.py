"""A model directory release 0.1 left with its whole journal undelivered (``fixtures/
release-0.1-spooled``, made by ``fixtures/release-0.1-spooled.make.py``: three validated
checkpoints, the oldest pruned locally, a store that never answered) is delivered by today's
``sync``; and sync's answer when the journal was damaged on the way: lines it cannot read, a cut
journal, staged files gone. Against a real SQLite store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import history, stored_steps
from mlflow import MlflowClient

from elistimator_tracking import Elistimator
from elistimator_tracking.errors import TrackingWarning
from elistimator_tracking.tracking import sync

FIXTURE = Path(__file__).parent / "fixtures" / "release-0.1-spooled"
VALIDATED = [3, 6, 9]


@pytest.fixture
def spooled(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(FIXTURE, model, symlinks=True)
    return model, f"sqlite:///{tmp_path / 'store.db'}"


def journal_of(model: Path) -> Path:
    (journal,) = model.glob("tracking/store-*/journal.jsonl")
    return journal


def delivered_run(model: Path, store: str):
    record = json.loads((model / "elistimator.json").read_text())["tracking"]
    assert record["tracking_uri"] == store
    return MlflowClient(store).get_run(record["run_id"])


def test_a_journal_release_0_1_left_is_delivered_whole_by_todays_sync(spooled):
    model, store = spooled
    reports = sync(model, tracking_uri=store)
    assert reports[store].delivered and not reports[store].lost and not reports[store].quarantined
    run = delivered_run(model, store)
    client = MlflowClient(store)
    assert run.info.status == "FINISHED" and run.info.run_name == "spooled"
    assert run.data.params["learning_rate"] == "0.5" and run.data.params["batch_size"] == "8"
    assert [s for s, _ in history(client, run.info.run_id, "validation/loss")] == VALIDATED
    assert stored_steps(client, run.info.run_id) == VALIDATED  # its logged models
    legacy = sorted(a.path for a in client.list_artifacts(run.info.run_id, "checkpoints"))
    assert legacy == [f"checkpoints/step-{s}" for s in VALIDATED]  # what release 0.1 also uploaded
    with Elistimator.from_disk(f"runs:/{run.info.run_id}", checkpoint=3, tracking=store, verbose=False) as restored:
        assert restored.global_step == 3  # pruned locally: restored from the store


@pytest.mark.parametrize(
    "line",
    [
        b'{"seq": 21, "run": "x", "op": "metrics_v2", "metrics": {}}',
        b'{"seq": 22, "run": "x"}',
        b"\xff\xfegarbage",
        b'{"seq": 23, "run": "x", "op": "tags", "tags": {}, "commit": {"kind": "validation_v2", "step": 1}}',
        b'{"v": 3, "seq": 24, "run": "x", "op": "tags", "tags": {}}',
    ],
)
def test_a_line_sync_cannot_understand_is_quarantined_and_never_blocks_the_rest(spooled, line):
    model, store = spooled
    journal = journal_of(model)
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:5]) + line + b"\n" + b"".join(lines[5:]))
    with pytest.warns(TrackingWarning, match=r"journal.jsonl: 1 line\(s\) could not be understood"):
        reports = sync(model, tracking_uri=store)
    assert reports[store].delivered and len(reports[store].quarantined) == 1
    run = delivered_run(model, store)
    assert stored_steps(MlflowClient(store), run.info.run_id) == VALIDATED and run.info.status == "FINISHED"
    assert list(model.glob("tracking/store-*/quarantine.jsonl"))  # kept beside the journal (moved with it)


def test_a_journal_cut_short_is_made_whole_from_the_model_directory(spooled):
    """Everything after the run's start is lost from the journal: sync sends the validations and
    the checkpoints elistimator.json holds, and the run's end; step 3, pruned locally and never
    delivered, is reported lost."""
    model, store = spooled
    journal = journal_of(model)
    journal.write_bytes(journal.read_bytes().splitlines(keepends=True)[0])
    with pytest.warns(TrackingWarning, match="the checkpoint at step 3 is lost"):
        reports = sync(model, tracking_uri=store)
    report = reports[store]
    assert report.delivered and report.lost == ["the checkpoint at step 3"]
    assert "the checkpoint at step 6" in report.resent and "the checkpoint at step 9" in report.resent
    run, client = delivered_run(model, store), MlflowClient(store)
    assert [s for s, _ in history(client, run.info.run_id, "validation/loss")] == VALIDATED
    assert stored_steps(client, run.info.run_id) == [6, 9]
    # release 0.1 did not record how close() ended the run, so the run that never heard it ends KILLED
    assert run.info.status == "KILLED" and "without closing the run" in run.data.tags["elistimator.error"]
    again = sync(model)[store]  # reconciled: a second sync finds nothing to send, and says the loss once
    assert again.delivered and not again.resent and not again.lost


def test_a_staged_checkpoint_whose_folder_is_gone_is_sent_from_the_model_directory(spooled):
    model, store = spooled
    for staged in model.glob("tracking/store-*/outbox/model-step-9-*"):
        shutil.rmtree(staged)
    reports = sync(model, tracking_uri=store)
    assert reports[store].delivered and not reports[store].lost
    run = delivered_run(model, store)
    assert stored_steps(MlflowClient(store), run.info.run_id) == VALIDATED
