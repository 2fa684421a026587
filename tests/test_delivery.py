"""Delivery's own logic, in seconds, without TensorFlow: the tracker's journal delivered to a
recording client (``recording_client.py``) that fails on cue, and the same journal delivered to
a real ``mlflow server``, which must end the same.

Covered: order and batching, retries after a 500, a 429, a refused connection and a read timeout,
idempotency after a crash between delivery and its mark, one refused item among many, a run
deleted in the store, a disk that refuses the mark, an error of the delivery thread itself, a
checkpoint whose staged files are gone, a store coming back from an outage, and the retention
policy's deletions (after their successor, never a registered version's)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from recording_client import RecordingClient

from elistimator_tracking import metadata as metadata_file
from elistimator_tracking.errors import TrackingWarning
from elistimator_tracking.model_dir import ModelDirectory
from elistimator_tracking.tracking import mlflow_tracker as tracker_module
from elistimator_tracking.tracking.journal import ops
from elistimator_tracking.tracking.journal import worker as worker_module
from elistimator_tracking.tracking.journal.delivery import Delivery
from elistimator_tracking.tracking.journal.local import LocalCheckpoints
from elistimator_tracking.tracking.journal.spool import Spool
from elistimator_tracking.tracking.logged_models import checkpoint_key
from elistimator_tracking.tracking.mlflow_tracker import MlflowTracker
from elistimator_tracking.tracking.names import CHECKPOINT_KEY_TAG, MODEL_ID_TAG, RUN_KEY_TAG, STEP_TAG
from elistimator_tracking.tracking.pages import every_page, experiment_ids
from elistimator_tracking.tracking.run import RunRecord

URI = "http://127.0.0.1:9"  # what the recorded journal says; the client is the double


def one_checkpoint(destination: Path, step: int, seed: int = 0) -> dict[str, str]:
    """A one-checkpoint model directory (as ``SavedCheckpoint.write`` makes) with made-up files."""
    folder = destination / "checkpoints"
    folder.mkdir(parents=True)
    files = {}
    for suffix in ("index", "meta", "data-00000-of-00001"):
        name = f"model-{step}.{suffix}"
        (folder / name).write_bytes(f"{seed}:{step}:{suffix}".encode() * 50)
        files[name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "checkpoint").write_text(f'model_checkpoint_path: "model-{step}"\n')
    metadata = {
        "format": "elistimator/1",
        "graph": {},
        "global_step": step,
        "max_to_keep": 5,
        "saver_args": {},
        "checkpoints": {str(step): {"prefix": f"checkpoints/model-{step}", "files": files, "local": True}},
        "validations": {},
        "tracking": None,
    }
    (destination / "elistimator.json").write_text(json.dumps(metadata))
    return files


#: the trackers' options in these tests: short waits, a quick back-off
OPTIONS = {"start_timeout": 5.0, "close_timeout": 20.0, "max_backoff": 0.2}


def next_tracker(client) -> MlflowTracker:
    """The tracker of the next session on the same store (a resumed training, or sync)."""
    return MlflowTracker(URI, client=client, **OPTIONS)


class Session:
    """One training's worth of tracker calls, as ``TrackingListener`` makes them, on ``model_dir``."""

    def __init__(self, model_dir: Path, client, **options):
        self.model_dir = model_dir
        options = {**OPTIONS, **options}
        self.tracker = MlflowTracker(URI, client=client, **options)
        self.run = RunRecord.new(self.tracker.tracking_uri, "delivery")
        self.files: dict[int, dict[str, str]] = {}

    def start(self) -> Session:
        self.tracker.start(self.model_dir / "tracking", self.run, "a run", {"team": "t"})
        return self

    def checkpoint(self, step: int, seed: int = 0) -> None:
        outbox = self.tracker.outbox(f"model-step-{step}")
        outbox.rmdir()
        self.files[step] = one_checkpoint(outbox, step, seed)
        self.tracker.hold({"kind": "checkpoint", "step": step, "files": self.files[step]})
        self.tracker.log_checkpoint_model(outbox, step, self.files[step])
        self.tracker.release(True)

    def validation(self, step: int, loss: float) -> None:
        self.tracker.hold({"kind": "validation", "step": step, "metrics": {"loss": loss}})
        if step in self.files:
            self.tracker.log_model_metrics({"validation/loss": loss}, step, self.files[step])
        else:
            self.tracker.log_metrics({"validation/loss": loss}, step)
        self.tracker.release(True)

    def script(self, steps=(10, 20, 30)) -> None:
        """params, tags, training losses, a validation and a checkpoint at each step, a retraction."""
        self.tracker.log_params({"lr": "0.5", "layers": "2"})
        self.tracker.set_tags({"phase": "one"})
        for step in steps:
            for point in range(step - 9, step + 1):
                self.tracker.log_metrics({"train/loss": 1.0 / point}, point)
            self.validation(step, 1.0 / step)
            self.checkpoint(step)
        self.tracker.log_metrics({"validation/loss": float("nan")}, steps[-1])  # a branch retracts the last

    @property
    def spool(self) -> Spool:
        return self.tracker._require_started()


def lose_the_marks(session: Session) -> Spool:
    """Stop ``session`` as a crash right after delivery would: the journal as it stood, none of the
    delivered marks on disk (``delivered`` at 0). Returns its spool, closed."""
    spool = session.spool
    journal = spool.path / "journal.jsonl"
    kept = journal.read_bytes()
    session.tracker._worker.stop()
    spool.close()
    (spool.path / "delivered").write_text("0\n")
    journal.write_bytes(kept)
    return spool


def snapshot(client, run_key: str) -> dict:
    """What a store holds of the run named by ``run_key``, through calls both clients take."""
    (run,) = client.search_runs(
        experiment_ids(client), filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'", max_results=5
    )
    run = client.get_run(run.info.run_id)
    models = every_page(
        client.search_logged_models, [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
    )
    history = {
        key: sorted((m.step, m.timestamp, repr(m.value)) for m in client.get_metric_history(run.info.run_id, key))
        for key in run.data.metrics
    }
    return {
        "status": run.info.status,
        "params": run.data.params,
        "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
        "history": history,
        "models": sorted(int(m.tags[STEP_TAG]) for m in models if str(m.status) == "READY"),
        "artifacts": sorted(a.path for a in client.list_artifacts(run.info.run_id)),
    }


def finished(session: Session) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrackingWarning)
        session.tracker.finish("FINISHED")


@pytest.fixture
def client(tmp_path):
    return RecordingClient(tmp_path / "store")


def test_a_journal_is_delivered_in_order_with_metric_points_batched(tmp_path, client):
    session = Session(tmp_path / "model", client).start()
    session.script()
    finished(session)
    held = snapshot(client, session.run.run_key)
    assert held["status"] == "FINISHED" and held["params"] == {"lr": "0.5", "layers": "2"}
    assert held["tags"]["team"] == "t" and held["tags"]["phase"] == "one"
    assert [s for s, _, _ in held["history"]["train/loss"]] == list(range(1, 31)) and held["models"] == [10, 20, 30]
    assert [v for _, _, v in held["history"]["validation/loss"]][-1] == "nan"
    batches = client.calls.count("log_batch")
    assert batches < 15, f"30 training points and 3 validations took {batches} store calls"
    assert not (session.spool.path / "journal.jsonl").exists()  # everything delivered: compacted


@pytest.mark.parametrize(
    ("fault", "on", "why"),
    [
        ("500", "log_batch", "MlflowException: API request to log_batch failed with error code 500 != 200."),
        ("429", "log_batch", "MlflowException: API request to log_batch failed: too many requests."),
        ("refused", "log_batch", "ConnectionError: no answer from 127.0.0.1:9: [Errno 111] Connection refused."),
        ("timeout", "log_batch", "the store did not answer within 5 s."),
        ("timeout", "log_model_artifacts", "the store did not answer within 30 s."),  # an upload waits longer
    ],
)
def test_failures_worth_retrying_are_retried_and_deliver_everything_once(tmp_path, client, fault, on, why):
    session = Session(tmp_path / "model", client).start()
    client.fail(fault, times=3, on=on)
    with pytest.warns(TrackingWarning, match="is behind") as warned:
        session.script()
        session.tracker.finish("FINISHED")
    (behind,) = [str(w.message) for w in warned if "is behind" in str(w.message)]
    assert behind == (
        f"tracking to {URI} is behind: {why} Training goes on; what is not delivered yet is kept in "
        f"{session.spool.path} and sent when the store answers (retried in the background, at close(), at the "
        "next run in this model directory, or with elistimator_tracking.tracking.sync(model_dir))"
    )
    held = snapshot(client, session.run.run_key)
    assert len(held["history"]["train/loss"]) == 30 and len(held["history"]["validation/loss"]) == 4
    assert held["models"] == [10, 20, 30] and held["status"] == "FINISHED"


def test_a_mark_lost_in_a_crash_is_replayed_harmlessly_by_the_next_session(tmp_path, client):
    session = Session(tmp_path / "model", client).start()
    session.script()
    session.tracker.flush(10)
    before = snapshot(client, session.run.run_key)
    lose_the_marks(session)
    again = next_tracker(client)
    again.start(tmp_path / "model" / "tracking", session.run, "a run", {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrackingWarning)
        again.finish("FINISHED")
    after = snapshot(client, session.run.run_key)
    assert after["history"] == before["history"] and after["models"] == before["models"]
    assert after["status"] == "FINISHED" and len(client.runs) == 1
    assert sum(1 for m in client.models.values() if m.lifecycle_stage == "active") == 3


def test_work_whose_run_the_spool_forgot_finds_it_in_every_page_of_experiments(tmp_path):
    """``runs.json`` lost while work is pending: the run is found again by its key in every
    experiment of a real store, not in the first page of them (1,000) only; a team's store holds
    more, and the run's experiment, older than those, is on the second page."""
    real = MlflowClient(f"sqlite:///{tmp_path / 'store.db'}")
    session = Session(tmp_path / "model", real).start()
    session.tracker.flush(10)  # the run exists and the spool names it
    session.tracker._worker.stop()
    session.script()  # journaled, not delivered
    spool = session.spool
    spool.close()
    (spool.path / "runs.json").write_text("{not json")
    for n in range(1001):
        real.create_experiment(f"team-{n}")
    again = next_tracker(real)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TrackingWarning)
        again.start(tmp_path / "model" / "tracking", session.run, "a run", {})
        again.finish("FINISHED")
    said = [str(w.message) for w in caught]
    assert [message for message in said if "runs.json is damaged" in message] and not [
        m for m in said if "dropped" in m
    ]
    held = snapshot(real, session.run.run_key)
    assert held["models"] == [10, 20, 30] and len(held["history"]["train/loss"]) == 30
    assert held["params"] == {"lr": "0.5", "layers": "2"} and held["status"] == "FINISHED"


def test_one_refused_item_is_dropped_alone_and_named_once(tmp_path, client):
    session = Session(tmp_path / "model", client).start()
    session.tracker.log_params({"lr": "0.5"})
    session.tracker.flush(10)
    session.tracker.log_params({"lr": "0.1", "layers": "2", "bad key!": "x"})
    with pytest.warns(TrackingWarning) as caught:
        session.tracker.finish("FINISHED")
    notes = [str(w.message) for w in caught if "refused the param" in str(w.message)]
    assert len(notes) == 2 and any("'lr'" in n for n in notes) and any("'bad key!'" in n for n in notes)
    assert snapshot(client, session.run.run_key)["params"] == {"lr": "0.5", "layers": "2"}


@pytest.mark.parametrize("how", ["deleted", "purged"])
def test_a_run_deleted_in_the_store_drops_its_later_work_with_one_warning(tmp_path, client, how):
    session = Session(tmp_path / "model", client).start()
    session.tracker.flush(10)
    run_id = session.spool.run_id(session.run.run_key)
    if how == "deleted":
        client.delete_run(run_id)  # in the UI: the store answers that the run is not active
    else:
        del client.runs[run_id]  # purged (mlflow gc): the store no longer knows the run
    with pytest.warns(TrackingWarning) as caught:
        session.script()
        session.tracker.finish("FINISHED")
    gone = [str(w.message) for w in caught if "is deleted or unknown there" in str(w.message)]
    assert len(gone) == 1
    assert not session.spool.pending()  # dropped on purpose: nothing left that could ever be delivered


def resumed_session(model: Path, run: RunRecord, client) -> list[str]:
    """The next session on ``model`` for ``run``: started, one point logged, delivered and finished;
    the warnings it gave."""
    tracker = next_tracker(client)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TrackingWarning)
        tracker.start(model / "tracking", run, "a run", {})
        tracker.log_metrics({"train/loss": 0.5}, 2)
        tracker.flush(10)
        tracker.finish("FINISHED")
    return [str(w.message) for w in caught]


def test_the_run_a_model_directory_records_is_resumed_running_in_the_next_session(tmp_path, client):
    first = Session(tmp_path / "model", client).start()
    first.tracker.log_metrics({"train/loss": 1.0}, 1)
    finished(first)
    (run_id,) = client.runs
    statuses = []
    update_run = client.update_run
    client.update_run = lambda run, status: statuses.append(status) or update_run(run, status)
    said = resumed_session(tmp_path / "model", first.run, client)
    assert not [message for message in said if "a new run is started" in message]
    assert list(client.runs) == [run_id] and statuses == ["RUNNING"]
    held = snapshot(client, first.run.run_key)
    assert [s for s, _, _ in held["history"]["train/loss"]] == [1, 2] and held["status"] == "FINISHED"


@pytest.mark.parametrize("how", ["deleted", "unknown"])
def test_a_recorded_run_deleted_or_unknown_in_the_store_is_started_anew_with_one_warning(tmp_path, client, how):
    first = Session(tmp_path / "model", client).start()
    first.tracker.log_metrics({"train/loss": 1.0}, 1)
    finished(first)
    (old_run,) = client.runs
    if how == "deleted":
        client.delete_run(old_run)
    else:
        client = RecordingClient(tmp_path / "another-store")  # the same address, another store behind it
    said = resumed_session(tmp_path / "model", first.run, client)
    (new,) = [message for message in said if "a new run is started" in message]
    assert f"the run {old_run} recorded in the model directory is not known to {URI}" in new
    (fresh,) = [run for run in client.runs.values() if run.lifecycle_stage == "active"]
    assert fresh.tags[RUN_KEY_TAG] == first.run.run_key and fresh.status == "FINISHED"
    assert len(client.runs) == (2 if how == "deleted" else 1)
    assert [point.step for point in fresh.points] == [2]


@pytest.mark.parametrize(("fault", "created"), [("invalid", False), ("500", True)])
def test_a_store_that_refuses_to_create_the_run_drops_its_work_with_one_warning(tmp_path, client, fault, created):
    """A refusal of the run itself (a value the store will never take) drops the run's work, said
    once; a failure worth retrying (500) is retried and the run created."""
    client.fail(fault, on="create_run")
    session = Session(tmp_path / "model", client)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TrackingWarning)
        session.start()
        session.script(steps=(10,))
        session.tracker.finish("FINISHED")
    refused = [str(w.message) for w in caught if "refused to create the run" in str(w.message)]
    assert not session.spool.pending()
    if created:
        assert not refused and snapshot(client, session.run.run_key)["models"] == [10]
        return
    (said,) = refused
    assert said.startswith(f"the tracking store {URI} refused to create the run (MlflowException: API request to ")
    assert "create_run failed: invalid value" in said and said.endswith("dropped. Training goes on")
    assert not client.runs


def test_a_disk_that_refuses_the_mark_is_reported_at_once_and_nothing_is_lost(tmp_path, client, monkeypatch):
    session = Session(tmp_path / "model", client, close_timeout=60.0).start()
    session.tracker.flush(10)
    full = {"left": 10**6}
    marked = Spool.mark_delivered

    def refusing(spool, seq):
        if full["left"] > 0:
            raise OSError(28, "No space left on device")
        return marked(spool, seq)

    monkeypatch.setattr(Spool, "mark_delivered", refusing)
    session.tracker.log_metrics({"train/loss": 0.5}, 1)
    started = time.monotonic()
    with pytest.warns(TrackingWarning) as caught:
        session.tracker.finish("FINISHED")
    assert time.monotonic() - started < 30, "a full disk ends close()'s wait at once, not after close_timeout"
    messages = " ".join(str(w.message) for w in caught)
    assert "No space left on device" in messages and "kept in" in messages
    progress = session.tracker._worker.progress  # what sync says: the disk, not the store
    assert progress.fault == progress.last_error and progress.fault.startswith(
        f"the disk of {session.spool.path} refused a write (No space left on device)"
    )
    assert progress.failures >= 1
    full["left"] = 0  # space freed: the next session (or sync) delivers what was kept, once
    again = next_tracker(client)
    again.start(tmp_path / "model" / "tracking", session.run, "a run", {})
    finished(SimpleNamespace(tracker=again))
    held = snapshot(client, session.run.run_key)
    assert [s for s, _, _ in held["history"]["train/loss"]] == [1] and held["status"] == "FINISHED"


def test_the_delivery_thread_survives_an_error_of_its_own_and_goes_on(tmp_path, client, monkeypatch):
    session = Session(tmp_path / "model", client).start()
    deliver, broken = Delivery.deliver, {"times": 2}

    def flaky(self, batch):
        if broken["times"]:
            broken["times"] -= 1
            raise KeyError("op")  # a bug of ours, not the store's
        return deliver(self, batch)

    monkeypatch.setattr(Delivery, "deliver", flaky)
    with pytest.warns(TrackingWarning, match="KeyError in the delivery thread"):
        session.script()
        session.tracker.finish("FINISHED")
    assert snapshot(client, session.run.run_key)["models"] == [10, 20, 30]


def model_directory(root: Path, run: RunRecord, steps) -> dict[int, dict[str, str]]:
    """A model directory whose elistimator.json holds checkpoints at ``steps`` (files on disk)."""
    files = {}
    for step in steps:
        one = root / f".step-{step}"
        files[step] = one_checkpoint(one, step)
        (root / "checkpoints").mkdir(parents=True, exist_ok=True)
        for item in (one / "checkpoints").iterdir():
            shutil.copy2(item, root / "checkpoints" / item.name)
        shutil.rmtree(one)
    metadata = {
        "format": "elistimator/1",
        "graph": {},
        "global_step": max(steps),
        "max_to_keep": 5,
        "saver_args": {},
        "checkpoints": {
            str(s): {"prefix": f"checkpoints/model-{s}", "files": f, "local": True} for s, f in files.items()
        },
        "validations": {},
        "tracking": run.to_json(),
    }
    (root / "elistimator.json").write_text(json.dumps(metadata))
    return files


def test_a_checkpoint_whose_staged_files_are_gone_is_remade_from_the_model_directory(tmp_path, client):
    model = tmp_path / "model"
    session = Session(model, client)
    files = model_directory(model, session.run, [10, 20])
    session.files = files
    session.start()
    with warnings.catch_warnings():  # this session's outboxes stay empty (removed below): its attempts fail
        warnings.simplefilter("ignore", TrackingWarning)
        for step in (10, 20):
            outbox = session.tracker.outbox(f"model-step-{step}")
            session.tracker.log_checkpoint_model(outbox, step, files[step])
        spool = session.spool
        session.tracker._worker.stop()
    spool.close()
    for folder in (spool.path / "outbox").iterdir():
        shutil.rmtree(folder)  # the staged copies are gone
    (model / "checkpoints" / "model-20.index").write_bytes(b"damaged")  # and step 20's own files changed
    again = next_tracker(client)
    with pytest.warns(TrackingWarning, match="the checkpoint at step 20 cannot reach .* it is reported as lost"):
        worker = again.deliver_spool(Spool(model / "tracking", URI), 20, LocalCheckpoints(model, session.run.run_key))
    assert worker.lost == ["the checkpoint at step 20"]
    assert snapshot(client, session.run.run_key)["models"] == [10]
    remade = client.root / "models" / next(iter(client.models)) / "artifacts" / "model_dir" / "elistimator.json"
    assert json.loads(remade.read_text())["checkpoints"]["10"]["files"] == files[10]


def test_staged_files_that_are_gone_are_lost_only_when_the_store_never_got_them(tmp_path, client):
    """An ``artifacts`` operation whose outbox folder is gone: delivered by an attempt whose mark a
    crash lost (the store holds the files: nothing to say), or never delivered (reported lost)."""
    session = Session(tmp_path / "model", client).start()
    events = session.tracker.outbox("events")
    (events / "events.out").write_text("loss 0.5")
    session.tracker.log_artifacts(events, "tensorboard")
    session.tracker.flush(10)
    spool = lose_the_marks(session)
    assert not events.exists()  # swept once delivered
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrackingWarning)
        reopened = Spool(tmp_path / "model" / "tracking", URI)
    reopened.append(ops.Artifacts(run=session.run.run_key, directory="outbox/source-0123456789ab", artifact_path="src"))
    reopened.close()
    tracker = next_tracker(client)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TrackingWarning)
        worker = tracker.deliver_spool(Spool(tmp_path / "model" / "tracking", URI), 20)
    (run_id,) = client.runs
    assert worker.lost == [f"the files for src/ of run {run_id}"]
    assert [str(w.message) for w in caught if "reported as lost" in str(w.message)] == [
        f"the files for src/ of run {run_id} cannot reach {URI}: its outbox folder in {spool.path} is gone and "
        "the model directory no longer holds its files; it is reported as lost"
    ]
    assert (client.root / "runs" / run_id / "tensorboard" / "events.out").read_text() == "loss 0.5"


def test_a_checkpoint_is_remade_only_from_the_same_checkpoint_intact_in_the_model_directory(tmp_path):
    """``LocalCheckpoints.remake``: the staged files of checkpoint ``key`` are written again only when
    ``elistimator.json`` still holds that very checkpoint (same step, same files) and the files are
    intact; anything else is False and the destination stays empty (the checkpoint is reported lost)."""
    run = RunRecord.new(URI, "delivery")
    model = tmp_path / "model"
    files = model_directory(model, run, [10, 20])
    key = checkpoint_key(run.run_key, 10, files[10])
    another_branch = checkpoint_key(run.run_key, 10, {**files[10], "model-10.index": "0" * 64})

    def remade(local: LocalCheckpoints, step: int, key: str) -> bool:
        destination = tmp_path / f"remade-{len(list(tmp_path.iterdir()))}"
        destination.mkdir()
        done = local.remake(step, key, destination)
        assert done or not any(destination.iterdir())
        return done

    assert not remade(LocalCheckpoints(tmp_path / "gone", run.run_key), 10, key)  # no model directory
    assert not remade(LocalCheckpoints(model, None), 10, key)  # no run key to name a checkpoint by
    assert not remade(LocalCheckpoints(model, run.run_key), 30, key)  # a step it never held
    assert not remade(LocalCheckpoints(model, run.run_key), 10, another_branch)  # the same step, other weights
    assert remade(LocalCheckpoints(model, run.run_key), 10, key)
    metadata = json.loads((model / "elistimator.json").read_text())
    metadata["checkpoints"]["10"]["local"] = False  # pruned here since
    (model / "elistimator.json").write_text(json.dumps(metadata))
    assert not remade(LocalCheckpoints(model, run.run_key), 10, key)


def test_a_checkpoint_the_store_will_never_get_is_marked_as_bookkeeping_and_an_unknown_step_ignored(tmp_path):
    """``LocalCheckpoints.not_stored``: ``'stored': False`` for that step only, under the same
    generation (bookkeeping: another writer that loaded the directory is not made stale by it)."""
    run = RunRecord.new(URI, "delivery")
    model = tmp_path / "model"
    model_directory(model, run, [10, 20])
    generation = metadata_file.write(ModelDirectory(model), metadata_file.read(ModelDirectory(model)))
    local = LocalCheckpoints(model, run.run_key)
    local.not_stored(30)  # never held: nothing to mark, nothing written
    local.not_stored(10)
    after = metadata_file.read(ModelDirectory(model))
    assert after.generation == generation
    assert [(step, after.index.records[step].stored) for step in (10, 20)] == [(10, False), (20, True)]
    assert json.loads((model / "elistimator.json").read_text())["checkpoints"]["10"]["stored"] is False


def test_delivery_resumes_as_soon_as_the_store_listens_again_not_after_its_back_off(tmp_path, client, monkeypatch):
    listening = {"answer": False}
    monkeypatch.setattr(tracker_module, "store_probe", lambda uri: lambda: listening["answer"])  # where it is used
    session = Session(tmp_path / "model", client, max_backoff=30.0).start()
    session.tracker.flush(10)
    client.fail("refused", times=100, on="log_batch")  # away: backed off 0.5 + 1 + 2 + 4 s, then 8 s
    with pytest.warns(TrackingWarning, match="is behind"):
        session.tracker.log_metrics({"train/loss": 0.5}, 1)
        for _ in range(200):  # until the store refused 5 times: the thread now sleeps 8 s
            if client.calls.count("log_batch") >= 6:
                break
            time.sleep(0.1)
    client.heal()
    listening["answer"] = True  # the store is back: each probe says so
    worker = session.tracker._worker
    for _ in range(50):  # nobody waits (a waiter alone cuts a pause short): the probe must end the back-off
        if worker.progress.delivered >= worker.last_queued():
            break
        time.sleep(0.1)
    else:
        pytest.fail("not delivered within 5 s of the store's return: the thread slept out its back-off (8 s)")
    finished(session)


def test_a_later_session_finds_in_the_store_the_checkpoint_it_is_to_delete(tmp_path, client):
    session = Session(tmp_path / "model", client).start()
    for step in (10, 20):
        session.checkpoint(step)
    finished(session)
    again = next_tracker(client)
    again.start(tmp_path / "model" / "tracking", session.run, "a run", {})
    again.delete_checkpoint_model(10, session.files[10])  # this session never saw its logged model
    finished(SimpleNamespace(tracker=again))
    assert snapshot(client, session.run.run_key)["models"] == [20]


def test_each_failed_attempt_is_counted_and_the_last_failure_kept_for_sync_to_say(tmp_path, client):
    session = Session(tmp_path / "model", client).start()
    session.tracker.flush(10)
    client.fail("500", times=3, on="log_batch")
    with pytest.warns(TrackingWarning, match="is behind"):
        session.tracker.log_metrics({"train/loss": 0.5}, 1)
        assert session.tracker.flush(20)
    progress = session.tracker._worker.progress
    assert progress.failures == 3 and progress.fault is None
    assert progress.last_error == "MlflowException: API request to log_batch failed with error code 500 != 200"
    finished(session)


def test_retention_deletes_a_checkpoint_only_after_its_successor_and_never_a_registered_one(tmp_path, client):
    session = Session(tmp_path / "model", client).start()
    for step in (10, 20, 30):
        session.checkpoint(step)
    session.tracker.flush(10)
    run_id = session.spool.run_id(session.run.run_key)
    registered = next(m for m in client.models.values() if m.tags[STEP_TAG] == "10")
    client.versions.append(SimpleNamespace(run_id=run_id, tags={MODEL_ID_TAG: registered.model_id}))
    for step in (10, 20):
        session.tracker.delete_checkpoint_model(step, session.files[step])
    kept = f"the checkpoint at step 10 stays in {URI}: a registered version uses it (a registered version's "
    with pytest.warns(TrackingWarning, match=re.escape(kept + "checkpoint is never deleted)")):
        session.tracker.finish("FINISHED")
    assert snapshot(client, session.run.run_key)["models"] == [10, 30]
    deleted = next(m for m in client.models.values() if m.tags[STEP_TAG] == "20")
    assert deleted.lifecycle_stage == "deleted" and not (client.root / "models" / deleted.model_id).exists()
    order = [c for c in client.calls if c in ("finalize_logged_model", "delete_logged_model")]
    assert order.index("delete_logged_model") > 2, "deleted only after every successor was delivered"
    assert checkpoint_key(session.run.run_key, 20, session.files[20]) == deleted.tags[CHECKPOINT_KEY_TAG]


@pytest.mark.slow
def test_the_same_journal_ends_the_same_in_the_recording_client_and_in_a_real_server(tmp_path, client, shared_server):
    """The double is held against the real thing: one scripted journal, delivered to each."""
    real = MlflowClient(shared_server.uri)
    ends = []
    for name, target in (("double", client), ("real", real)):
        session = Session(tmp_path / name, target)
        session.run = RunRecord(session.tracker.tracking_uri, "delivery", "the-same-run-key")
        session.start()
        session.script()
        session.tracker.delete_checkpoint_model(10, session.files[10])
        finished(session)
        ends.append(snapshot(target, "the-same-run-key"))
    double, real_end = ends
    for held in ends:  # the times the two sessions ran at differ; what was sent does not
        held["history"] = {k: [(s, v) for s, _, v in points] for k, points in held["history"].items()}
    assert double == real_end
    assert real_end["models"] == [20, 30] and real_end["status"] == "FINISHED"


# -- what the warnings and sync's answers say of a failure ---------------------------------------------

REFUSED = (
    "API request to http://127.0.0.1:9/api/2.0/mlflow/runs/log-batch failed with exception "
    "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
    "/api/2.0/mlflow/runs/log-batch (Caused by NewConnectionError('<urllib3.connection.HTTPConnection "
    "object at 0x7f3a>: Failed to establish a new connection: [Errno 111] Connection refused'))"
)
CLOSED = (
    "API request to http://10.0.0.5:5000/api/2.0/mlflow/runs/get failed with exception "
    "HTTPConnectionPool(host='10.0.0.5', port=5000): Max retries exceeded with url: /api/2.0/mlflow/runs/get "
    "(Caused by ProtocolError('Connection aborted.', "
    "RemoteDisconnected('Remote end closed connection without response')))"
)


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (MlflowException(REFUSED), "MlflowException: no answer from 127.0.0.1:9: [Errno 111] Connection refused"),
        (
            MlflowException(CLOSED),
            "MlflowException: no answer from 10.0.0.5:5000: Remote end closed connection without response",
        ),
        (
            MlflowException("API request failed (Caused by ReadTimeoutError)"),
            "MlflowException: no answer: ReadTimeoutError)",
        ),
        (OSError("HTTPConnectionPool(host='h', port=1): Read timed out. (read timeout=5)"), None),
        (RuntimeError("first line\nsecond line"), "RuntimeError: first line"),
        (RuntimeError(""), "RuntimeError: "),
        (ValueError("x" * 400), "ValueError: " + "x" * 297 + "..."),
        (ValueError("x" * 300), "ValueError: " + "x" * 300),
        (ValueError("x" * 301), "ValueError: " + "x" * 297 + "..."),
        (
            MlflowException("(Caused by NewConnectionError('[Errno 111] Connection refused.'))"),
            "MlflowException: no answer: [Errno 111] Connection refused",  # the cause first; its last '.' dropped
        ),
        (
            OSError("(Caused by A('[Errno 1] outer')) (Caused by B('[Errno 2] inner'))"),
            "OSError: no answer: [Errno 2] inner",  # the innermost cause
        ),
        (OSError("(Caused by A('one', B('two', C('three'))))"), "OSError: no answer: three"),
        (OSError("(Caused by " + "y" * 70), "OSError: no answer: " + "y" * 49),
    ],
)
def test_a_failure_is_summed_up_short_and_whole(error, said):
    from elistimator_tracking.tracking.journal.delivery import summary

    if said is None:
        said = f"{type(error).__name__}: the store did not answer in time (read timed out)"
    assert summary(error) == said


def test_a_refused_connection_is_told_from_a_store_that_answers_with_an_error():
    refused = worker_module._refused_connection
    for words in ("Connection refused", "Errno 111", "NewConnectionError", "Failed to establish"):
        assert refused(OSError(f"... {words} ..."))
        wrapped = MlflowException("API request failed")
        wrapped.__cause__ = OSError(words)
        assert refused(wrapped)
        chained = MlflowException("API request failed")
        chained.__context__ = OSError(words)
        assert refused(chained)
    assert not refused(MlflowException("INTERNAL_ERROR: the database is locked"))
    assert not refused(MlflowException(CLOSED))


def test_only_a_refused_item_is_permanent_and_a_start_never_is():
    from mlflow.protos.databricks_pb2 import ErrorCode

    from elistimator_tracking.tracking.journal.ops import Metrics, Start

    def refused(code: str) -> MlflowException:
        return MlflowException("refused", error_code=ErrorCode.Value(code))

    permanent = worker_module._is_permanent
    point = Metrics(metrics={"loss": 1.0}, step=1, timestamp=1)
    start = Start(experiment="e")
    for code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST", "RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST"):
        assert permanent(refused(code), point)
        assert not permanent(refused(code), start)
    for code in ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "UNAUTHENTICATED"):
        assert not permanent(refused(code), point)
    assert not permanent(OSError("disk"), point)


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        (
            "401",
            "refused the login (HTTP 401, UNAUTHENTICATED): set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD to an account of that server",
        ),
        (
            "403",
            "refused access (HTTP 403, PERMISSION_DENIED): the account may not write there; ask the server's admin "
            "for permission (EDIT on the experiment) or use another account",
        ),
    ],
)
def test_a_refused_login_is_said_once_a_waiter_hears_it_at_once_and_nothing_is_lost(tmp_path, client, fault, said):
    session = Session(tmp_path / "model", client, max_backoff=0.2).start()
    session.tracker.flush(10)
    client.fail(fault, times=1000, on="log_batch")  # until the account is fixed
    with pytest.warns(TrackingWarning) as warned:
        session.tracker.log_metrics({"train/loss": 0.5}, 1)
        started = time.monotonic()
        assert not session.tracker._worker.wait(session.tracker._worker.last_queued(), 60.0)
        waited = time.monotonic() - started
    (refusal,) = [str(w.message) for w in warned]
    assert refusal == (
        f"the tracking store {URI} {said}. Training goes on; its tracking is kept in {session.spool.path} and "
        "delivered, once the server accepts it, by elistimator_tracking.tracking.sync(model_dir) or the next run "
        "in this model directory"
    )
    assert waited < 30.0, "a refused login ends the wait at the next refusal, not at the timeout"
    assert session.tracker._worker.progress.login_refused
    client.heal()  # the account fixed: what was kept arrives
    finished(session)
    assert snapshot(client, session.run.run_key)["history"]["train/loss"][0][::2] == (1, "0.5")
