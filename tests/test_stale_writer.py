"""A stale load never overwrites another writer (issue 30, finding 2).

``e1 = from_disk(md)``, ``e2 = from_disk(md)``; e2 trains, saves step 30 and closes; then e1 sets up.
Before the fix, e1's ``setup()`` wrote its stale view: e2's checkpoint entry vanished from
``elistimator.json``, and e1 went on to overwrite step 30's files, the run's artifact for step 30,
log a second logged model for step 30, and leave e2's validation at step 30 unretracted (two live
values at one step), all without a warning (measured on main 5fa99ec with this scenario: the file
held steps [20] after e1's ``setup()``, step 30's files were e1's, the run had logged models for
steps [20, 30, 30] and ``validation/loss`` points (20, 0.0089), (30, 0.0064), (30, 0.0065)).
Now e1 refuses at ``setup()`` with ``ModelDirectoryChanged`` and writes nothing.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import dataset_fn, history, stored_dir, stored_steps, tiny_model_fn
from mlflow import MlflowClient

from elistimator_tracking import Elistimator, ModelDirectoryChanged, ModelDirectoryError, metadata
from elistimator_tracking.model_dir import ModelDirectory


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def trained(tmp_path, data, store: str):
    (x, y), (vx, vy) = data
    model_dir = tmp_path / "model"
    with Elistimator(tiny_model_fn, model_dir, verbose=False, tracking=store, experiment="stale") as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        est.train(steps=20)
        est.validate()
        est.save_ckpt()
        run_id = est.run_id
    return model_dir, run_id


def test_a_stale_load_refuses_to_write_and_the_other_writers_step_survives(tmp_path, data):
    (x, y), (vx, vy) = data
    store = f"sqlite:///{tmp_path / 'store.db'}"
    model_dir, run_id = trained(tmp_path, data, store)
    e1 = Elistimator.from_disk(model_dir, verbose=False, tracking=store)
    e2 = Elistimator.from_disk(model_dir, verbose=False, tracking=store)
    e2.setup(dataset_fn(x, y), dataset_fn(vx, vy))
    e2.train(steps=10)
    validated = e2.validate()
    e2.save_ckpt()
    e2.close()
    committed = json.loads((model_dir / "elistimator.json").read_text())
    files = committed["checkpoints"]["30"]["files"]

    with pytest.raises(ModelDirectoryChanged, match=r"steps \[30\] are new") as caught:
        e1.setup(dataset_fn(x, y), dataset_fn(vx, vy))
    message = str(caught.value)
    assert str(model_dir) in message and "from_disk" in message and isinstance(caught.value, ModelDirectoryError)
    assert caught.value.found == committed["generation"] != caught.value.expected
    e1.close()

    assert json.loads((model_dir / "elistimator.json").read_text()) == committed  # not a byte changed
    for name, digest in files.items():
        assert sha256(model_dir / "checkpoints" / name) == digest
    client = MlflowClient(store)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert stored_steps(client, run_id) == [20, 30]  # one logged model for step 30
    logged = json.loads((stored_dir(client, run_id, 30) / "elistimator.json").read_text())
    assert logged["checkpoints"]["30"]["files"] == files
    assert history(client, run_id, "validation/loss")[-1] == (30, pytest.approx(validated["loss"]))

    again = Elistimator.from_disk(model_dir, verbose=False, tracking=store)  # loading it again goes on
    again.setup(dataset_fn(x, y), dataset_fn(vx, vy))
    assert again.global_step == 30 and sorted(again.checkpoints) == [20, 30]
    again.close()


def test_every_commit_records_a_new_generation_and_a_reader_that_never_writes_is_not_refused(tmp_path, data):
    """The public part issue 27 builds on: ``metadata.generation(directory)`` changes at every commit, a
    reload sees the new one, and closing without a new commit changes nothing."""
    (x, y), (vx, vy) = data
    directory = ModelDirectory(tmp_path / "model")
    est = Elistimator(tiny_model_fn, directory.path, verbose=False, tracking=False)
    est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
    seen = [metadata.generation(directory)]
    est.train(steps=3).save_ckpt()
    seen.append(metadata.generation(directory))
    est.validate()
    seen.append(metadata.generation(directory))
    reader = Elistimator.from_disk(directory.path, verbose=False, tracking=False)
    est.close()
    assert metadata.generation(directory) == seen[-1]  # closing committed nothing new
    assert len(set(seen)) == 3 and None not in seen
    assert reader.predict(x=vx)["classes"].shape == (30,)
    reader.setup(dataset_fn(x, y))  # nobody committed since it loaded: it may write
    reader.train(steps=1).save_ckpt()
    assert metadata.generation(directory) not in seen
    reader.close()
