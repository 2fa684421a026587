"""Links never lead outside the model directory (issue 30, finding 1): the package writes, truncates and
removes nothing through a symbolic link inside a model directory, and a forked child never keeps
the writer lock.

Before the fix, ``.writer.lock`` as a symlink to a file was truncated and overwritten with the
holder's JSON at ``Elistimator(...)``, ``setup()``, ``save_ckpt()`` and ``sync``; a lock that was a
directory raised a raw ``IsADirectoryError``; an immutable one a raw ``PermissionError``; a child
forked by the writer kept the lock after the writer was SIGKILLed, and the next writer's error
named the dead parent (that test is in test_writer_lock.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import dataset_fn, tiny_model_fn, train_epochs

from elistimator_tracking import Elistimator
from elistimator_tracking.errors import ModelDirectoryError, TrackingWarning
from elistimator_tracking.tracking import sync

USERS_FILE = "the user's own file\n"


def saved_model(tmp_path: Path, data, tracking=False) -> Path:
    """A model directory holding one checkpoint (step 9), its writer closed."""
    (x, y), (vx, vy) = data
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=tracking) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        train_epochs(est, 1)
    return tmp_path / "model"


def users_file(tmp_path: Path) -> Path:
    outside = tmp_path / "outside" / "notes.txt"
    outside.parent.mkdir(exist_ok=True)
    outside.write_text(USERS_FILE)
    return outside


def writes(model_dir: Path, data) -> dict:
    """Each call that takes the writer lock, on ``model_dir``."""
    (x, y), _ = data

    def setup():
        with Elistimator.from_disk(model_dir, verbose=False, tracking=False) as est:
            est.setup(dataset_fn(x, y))

    def save_ckpt():
        with Elistimator.from_disk(model_dir, verbose=False, tracking=False) as est:
            est.save_ckpt()

    return {
        "Elistimator(...)": lambda: Elistimator(tiny_model_fn, model_dir, verbose=False),
        "setup()": setup,
        "save_ckpt()": save_ckpt,
        "sync": lambda: sync(model_dir),
    }


@pytest.mark.parametrize("call", ["Elistimator(...)", "setup()", "save_ckpt()", "sync"])
def test_a_lock_that_is_a_symlink_is_refused_and_its_target_never_written(tmp_path, data, call):
    if call == "Elistimator(...)":  # a new model: an empty directory
        model_dir = tmp_path / "model"
        model_dir.mkdir()
        (model_dir / ".writer.lock").touch()
    else:
        model_dir = saved_model(tmp_path, data)
        (model_dir / "tracking").mkdir(exist_ok=True)  # sync takes the lock only where there is a journal
    outside = users_file(tmp_path)
    lock = model_dir / ".writer.lock"
    lock.unlink()
    lock.symlink_to(outside)
    with pytest.raises(ModelDirectoryError, match=r"\.writer\.lock is a symbolic link"):
        writes(model_dir, data)[call]()
    assert outside.read_text() == USERS_FILE
    assert lock.is_symlink()


@pytest.mark.parametrize("kind", ["directory", "unwritable"])
def test_a_lock_that_is_a_directory_or_cannot_be_written_is_a_model_directory_error(tmp_path, data, kind):
    model_dir = saved_model(tmp_path, data)
    lock = model_dir / ".writer.lock"
    if kind == "directory":
        lock.unlink()
        lock.mkdir()
        expected = r"\.writer\.lock is a directory"
    else:
        immutable(lock)
        expected = r"\.writer\.lock cannot be written"
    try:
        with pytest.raises(ModelDirectoryError, match=expected) as caught:
            writes(model_dir, data)["save_ckpt()"]()
        assert str(model_dir) in str(caught.value)
    finally:
        if kind == "unwritable":
            immutable(lock, False)


def immutable(path: Path, on: bool = True) -> None:
    """Make ``path`` unwritable even for root (``chattr +i``), or writable again."""
    if os.geteuid() != 0:
        path.chmod(0o400 if on else 0o600)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: no way to make a file unwritable")
    done = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr does not work here: {done.stderr.strip()}")


# -- every other file the core writes or removes in a model directory -------------------------------


def new_model(tmp_path: Path, data, **kwargs) -> Elistimator:
    (x, y), (vx, vy) = data
    est = Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=False, **kwargs)
    return est.setup(dataset_fn(x, y), dataset_fn(vx, vy))


def test_a_metadata_file_that_is_a_link_is_read_but_never_written_through(tmp_path, data):
    """Before: the atomic write replaced the link itself, silently (the next reader of the link's
    target saw an old model); a link is now refused before the write."""
    (x, y), _ = data
    model_dir = saved_model(tmp_path, data)
    kept = model_dir / "kept.json"
    (model_dir / "elistimator.json").rename(kept)
    (model_dir / "elistimator.json").symlink_to("kept.json")  # a link inside the directory: readable
    before = kept.read_text()
    with Elistimator.from_disk(model_dir, verbose=False, tracking=False) as est:
        with pytest.raises(ModelDirectoryError, match=r"elistimator\.json is a symbolic link"):
            est.setup(dataset_fn(x, y))
    assert kept.read_text() == before and (model_dir / "elistimator.json").is_symlink()


def test_a_checkpoint_folder_that_is_a_link_is_refused_before_the_saver_writes(tmp_path, data):
    """Before: the saver wrote model-9.* into the folder the link pointed at, outside the model directory."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "checkpoints").symlink_to(outside)
    est = new_model(tmp_path, data)
    est.train()
    with pytest.raises(ModelDirectoryError, match=r"checkpoints is a symbolic link"):
        est.save_ckpt()
    est.close()
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("name", ["model-18.meta", "model-18.index", "checkpoint"])
def test_a_link_where_a_checkpoint_file_goes_is_refused_and_its_target_kept(tmp_path, data, name):
    """Before: ``checkpoint`` (TensorFlow's state file) was replaced after the commit, and links at the
    names of the next checkpoint's files were left for the saver to replace or write through."""
    outside = users_file(tmp_path)
    est = new_model(tmp_path, data)
    est.train().save_ckpt()
    planted = tmp_path / "model" / "checkpoints" / name
    planted.unlink(missing_ok=True)
    planted.symlink_to(outside)
    est.train()
    with pytest.raises(ModelDirectoryError, match=rf"{name} is a symbolic link"):
        est.save_ckpt()
    assert sorted(est.checkpoints) == [9]  # nothing committed
    est.close()
    assert outside.read_text() == USERS_FILE


def test_pruning_removes_links_never_what_they_point_at(tmp_path, data):
    outside = users_file(tmp_path)
    est = new_model(tmp_path, data, params={"learning_rate": 0.5})
    est.setup(*[dataset_fn(*d) for d in data], train_saver_args={"max_to_keep": 1})
    est.train().save_ckpt()
    planted = tmp_path / "model" / "checkpoints" / "model-3.data-00000-of-00001"
    planted.symlink_to(outside)  # a checkpoint file the index does not hold: removed by pruning
    est._checkpoints.remove_unreferenced_files()
    assert not planted.is_symlink() and outside.read_text() == USERS_FILE
    est.close()


@pytest.mark.parametrize("folder", ["train", "validation"])
def test_an_event_folder_that_is_a_link_gets_no_events(tmp_path, data, folder):
    """Before: TensorBoard's writer created its event file in the folder the link pointed at."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / folder).symlink_to(outside)
    est = new_model(tmp_path, data)
    with pytest.warns(UserWarning, match=rf"{folder} is a symbolic link"):
        est.train()
        est.validate()
    est.close()
    assert list(outside.iterdir()) == []


def test_an_export_never_writes_through_a_link_at_its_destination(tmp_path, data):
    """Before: ``os.link`` failed on the existing name and ``shutil.copy2`` then copied the checkpoint
    over the file the link pointed at."""
    from elistimator_tracking.model_dir import ModelDirectory

    outside = users_file(tmp_path)
    est = new_model(tmp_path, data)
    est.train().save_ckpt()
    destination = tmp_path / "export"
    (destination / "checkpoints").mkdir(parents=True)
    (destination / "checkpoints" / "model-9.index").symlink_to(outside)
    record = est._checkpoints.index.records[9]
    with pytest.raises(ModelDirectoryError, match=r"model-9\.index is a symbolic link"):
        ModelDirectory(tmp_path / "model").export_checkpoint(record.prefix, record.files, destination)
    est.close()
    assert outside.read_text() == USERS_FILE


def test_a_link_in_an_event_folder_never_sends_what_it_points_at_to_the_run(tmp_path, data, tracking_store):
    """Before: the link was hard-linked into the outbox as a link, and MLflow uploaded the file it
    pointed at (a file from outside the model directory) as ``tensorboard/train/notes.txt``."""
    from mlflow import MlflowClient

    (x, y), (vx, vy) = data
    outside = users_file(tmp_path)
    est = Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, experiment="links")
    est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
    est.train()
    (tmp_path / "model" / "train" / "notes.txt").symlink_to(outside)
    with pytest.warns(UserWarning, match=r"notes\.txt is a symbolic link"):
        est.close()
    sent = [a.path for a in MlflowClient().list_artifacts(est.run_id, "tensorboard/train")]
    assert "tensorboard/train/notes.txt" not in sent


def test_remove_tree_refuses_a_link_on_the_way_and_never_follows_one_inside(tmp_path):
    """The journal's sweep removes folders in the model directory: through ``remove_tree``, never
    through a link (before, ``shutil.rmtree`` on the children of a linked outbox deleted the folders
    the link pointed at)."""
    from elistimator_tracking.model_dir import remove_tree

    model_dir, outside = tmp_path / "model", tmp_path / "outside"
    (outside / "photos").mkdir(parents=True)
    (outside / "photos" / "a.jpg").write_text("x")
    (model_dir / "tracking").mkdir(parents=True)
    (model_dir / "tracking" / "outbox").symlink_to(outside)
    with pytest.raises(ModelDirectoryError, match=r"outbox is a symbolic link"):
        remove_tree(model_dir, model_dir / "tracking" / "outbox" / "photos")
    (model_dir / "tracking" / "real").mkdir()
    (model_dir / "tracking" / "real" / "link").symlink_to(outside)
    remove_tree(model_dir, model_dir / "tracking" / "real")
    assert not (model_dir / "tracking" / "real").exists() and (outside / "photos" / "a.jpg").is_file()


def test_the_estimator_layout_file_is_never_written_through_a_link(tmp_path):
    import estimator_programs as programs

    from elistimator_tracking import estimator as tf_estimator

    outside = tmp_path / "outside.json"
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "estimator.json").symlink_to(outside)
    est = tf_estimator.Estimator(programs.model_fn, model_dir=str(tmp_path / "model"), params={}, tracking=False)
    with pytest.raises(ModelDirectoryError, match=r"estimator\.json is a symbolic link"):
        est.train(programs.train_input_fn(), steps=1)
    est.close()
    assert not outside.exists()


@pytest.mark.parametrize("call", ["sync", "a tracked setup()"])
def test_an_outbox_that_is_a_link_is_refused_by_sync_and_setup_and_its_target_keeps_every_folder(tmp_path, data, call):
    """The reported case: ``tracking/store-*/outbox`` replaced by a link to a folder of the user's;
    before, ``sync`` answered "all delivered" after its outbox sweep had deleted every sub-directory
    of the link's target (the sweep also runs at every tracked ``setup()``)."""
    model_dir = saved_model(tmp_path, data, tracking=True)
    (outbox,) = (model_dir / "tracking").glob("store-*/outbox")
    outside = tmp_path / "outside"
    (outside / "photos").mkdir(parents=True)
    (outside / "photos" / "a.jpg").write_text("x")
    (outside / "taxes").mkdir()
    shutil.rmtree(outbox)
    outbox.symlink_to(outside)
    (x, y), (vx, vy) = data
    if call == "sync":
        with pytest.raises(ModelDirectoryError, match=r"outbox is a symbolic link"):
            sync(model_dir)
    else:  # tracking never breaks training: it is off for this run, with a warning naming the link
        with pytest.warns(TrackingWarning, match=r"tracking is off .*/outbox is a symbolic link \(to "):
            with Elistimator.from_disk(model_dir, verbose=False) as est:
                est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
                train_epochs(est, 1)
    assert sorted(p.name for p in outside.iterdir()) == ["photos", "taxes"]
    assert (outside / "photos" / "a.jpg").read_text() == "x"
