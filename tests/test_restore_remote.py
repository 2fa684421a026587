"""Restoring beyond the local disk: pruned checkpoints, runs:/ and models:/ sources, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import best_of, dataset_fn, stored_dir, tiny_model_fn, train_epochs, tree
from mlflow import MlflowClient

from elistimator_tracking import Elistimator, ModelDirectoryError


@pytest.fixture
def run(tmp_path, data):
    """A finished run with checkpoints at steps 9, 18, 27 (only 27 kept locally) and the
    predictions each checkpoint made."""
    (x, y), (vx, vy) = data
    predictions = {}
    with Elistimator(tiny_model_fn, tmp_path / "model", params={"learning_rate": 0.05}, verbose=False) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy), train_saver_args={"max_to_keep": 1})
        returned = train_epochs(
            est, 3, each=lambda step: predictions.update({step: est.predict(x=vx)["probabilities"]})
        )
        run_id = est.run_id
    return {
        "run_id": run_id,
        "model_dir": tmp_path / "model",
        "predictions": predictions,
        "vx": vx,
        "cache": tmp_path / "cache",
        "returned": returned,
    }


def test_a_checkpoint_pruned_locally_is_fetched_from_the_run(run):
    step = best_of(run["returned"], "loss", "max")
    assert step != 27  # pruned: only 27 is on local disk
    with Elistimator.from_disk(run["model_dir"], verbose=False, cache_dir=run["cache"]) as est:
        assert not est.checkpoints[step]["local"]
        est.restore_best_ckpt(metric="loss", mode="max")
        assert est.global_step == step
        np.testing.assert_allclose(est.predict(x=run["vx"])["probabilities"], run["predictions"][step], rtol=1e-6)
    with Elistimator.from_disk(run["model_dir"], checkpoint=9, verbose=False, cache_dir=run["cache"]) as est:
        np.testing.assert_allclose(est.predict(x=run["vx"])["probabilities"], run["predictions"][9], rtol=1e-6)
        est.restore_ckpt(est.checkpoints[18]["file"])  # a pruned prefix, by path
        assert est.global_step == 18
        np.testing.assert_allclose(est.predict(x=run["vx"])["probabilities"], run["predictions"][18], rtol=1e-6)


def test_a_fresh_process_restores_the_best_checkpoint_from_the_run_alone(run, tmp_path):
    shutil.rmtree(run["model_dir"])  # the model directory is lost; the tracking URI is all we have
    script = f"""
import numpy as np
from elistimator_tracking import Elistimator
est = Elistimator.from_disk("runs:/{run["run_id"]}", checkpoint="best", cache_dir={str(run["cache"])!r}, verbose=False)
np.save({str(tmp_path / "answer.npy")!r}, est.predict(x=np.load({str(tmp_path / "vx.npy")!r}))["probabilities"])
print(est.global_step)
"""
    np.save(tmp_path / "vx.npy", run["vx"])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    step = int(done.stdout.strip().splitlines()[-1])
    assert step == best_of(run["returned"])
    np.testing.assert_allclose(np.load(tmp_path / "answer.npy"), run["predictions"][step], rtol=1e-6)


def test_models_sources_restore_the_registered_version_and_reuse_the_cache(run, request):
    name = request.node.name
    with Elistimator.from_disk(run["model_dir"], verbose=False) as est:
        version = est.register_best(name)
    for source in (f"models:/{name}@champion", f"models:/{name}/{version}"):
        with Elistimator.from_disk(source, cache_dir=run["cache"], verbose=False) as est:
            step = est.global_step
            np.testing.assert_allclose(est.predict(x=run["vx"])["probabilities"], run["predictions"][step], rtol=1e-6)
    (cached,) = run["cache"].glob(f"*/models/{name}/version-{version}")
    inode = (cached / "elistimator.json").stat().st_ino
    Elistimator.from_disk(f"models:/{name}@champion", cache_dir=run["cache"], verbose=False).close()
    assert (cached / "elistimator.json").stat().st_ino == inode  # reused, not downloaded again


@pytest.mark.parametrize(
    "source, error, message",
    [
        ("runs:/0123456789abcdef0123456789abcdef", LookupError, "there is no run '0123456789abcdef"),
        ("models:/no-such-model@champion", LookupError, "is not in the Model Registry"),
        ("models:/no-such-model/3", LookupError, "is not in the Model Registry"),
        ("models:/", ValueError, "is not a model source"),
    ],
)
def test_unknown_sources_are_clear_errors_and_leave_the_cache_as_it_was(source, error, message, run):
    Elistimator.from_disk(f"runs:/{run['run_id']}", cache_dir=run["cache"], verbose=False).close()
    before = tree(run["cache"])
    assert before
    with pytest.raises(error, match=message):
        Elistimator.from_disk(source, cache_dir=run["cache"])
    assert tree(run["cache"]) == before


def test_an_unknown_alias_and_a_metric_no_checkpoint_recorded(run, request):
    name = request.node.name
    with Elistimator.from_disk(run["model_dir"], verbose=False) as est:
        est.register_best(name, alias="champion")
    with pytest.raises(LookupError, match="is not in the Model Registry"):
        Elistimator.from_disk(f"models:/{name}@challenger", cache_dir=run["cache"])
    with pytest.raises(LookupError, match="no checkpoint has a validation metric 'f1'"):
        Elistimator.from_disk(f"runs:/{run['run_id']}", checkpoint="best", metric="f1", cache_dir=run["cache"])
    with pytest.raises(LookupError, match=r"no checkpoint at step 5; checkpoints: \[9, 18, 27\]"):
        Elistimator.from_disk(f"runs:/{run['run_id']}", checkpoint=5, cache_dir=run["cache"])


def test_a_checksum_mismatch_in_the_run_is_refused_and_nothing_stays(run):
    Elistimator.from_disk(f"runs:/{run['run_id']}", checkpoint=27, cache_dir=run["cache"], verbose=False).close()
    before = tree(run["cache"])
    data = next((stored_dir(MlflowClient(), run["run_id"], 18) / "checkpoints").glob("model-18.data-*"))
    data.write_bytes(data.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ModelDirectoryError, match="model-18.data-00000-of-00001 does not match its checksum"):
        Elistimator.from_disk(f"runs:/{run['run_id']}", checkpoint=18, cache_dir=run["cache"])
    assert tree(run["cache"]) == before


def test_a_prefix_that_leaves_the_model_directory_is_refused(run):
    metadata_file = stored_dir(MlflowClient(), run["run_id"], 9) / "elistimator.json"
    metadata = json.loads(metadata_file.read_text())
    metadata["checkpoints"]["9"]["prefix"] = "../../../../outside/model-9"
    metadata_file.write_text(json.dumps(metadata))
    with pytest.raises(ModelDirectoryError, match="points outside the model directory"):
        Elistimator.from_disk(f"runs:/{run['run_id']}", checkpoint=9, cache_dir=run["cache"])
    assert not [p for p in run["cache"].rglob("*") if p.is_file()]


CRAFTED_MLMODEL = """flavors:
  python_function:
    artifacts:
      model_dir:
        path: {path}
    loader_module: mlflow.pyfunc.loaders.code_model
"""


def test_a_download_whose_model_points_outside_it_is_refused(run, tmp_path, request):
    """A registered version whose MLmodel names a model directory outside the download (here a real
    one of the user's): refused, and that directory is neither moved into the cache nor changed."""
    victim = tmp_path / "victim"
    shutil.copytree(run["model_dir"], victim)
    before = tree(victim)
    crafted = tmp_path / "crafted"
    crafted.mkdir()
    (crafted / "MLmodel").write_text(CRAFTED_MLMODEL.format(path=victim))
    client, name = MlflowClient(), request.node.name
    run_id = client.create_run(client.create_experiment(name)).info.run_id
    client.log_artifacts(run_id, str(crafted), "model")
    client.create_registered_model(name)
    client.create_model_version(name, source=f"{client.get_run(run_id).info.artifact_uri}/model", run_id=run_id)
    with pytest.raises(ModelDirectoryError, match="points outside the download directory; refusing it"):
        Elistimator.from_disk(f"models:/{name}/1", cache_dir=run["cache"])
    assert tree(victim) == before
    assert not [p for p in run["cache"].rglob("*") if p.is_file()]


def test_a_pruned_checkpoint_is_checked_against_this_directory_s_own_checksums(run, data, tmp_path):
    """The run's step-9 checkpoint replaced by another model's step 9 (valid, with its own checksums):
    restoring the pruned step 9 refuses it, since this model directory (and the store's database)
    recorded other files."""
    (x, y), (vx, vy) = data
    with Elistimator(tiny_model_fn, tmp_path / "other", params={"learning_rate": 0.9}, verbose=False) as other:
        other.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        train_epochs(other, 1)
        other_run = other.run_id
    logged = stored_dir(MlflowClient(), run["run_id"], 9)
    shutil.rmtree(logged)
    shutil.copytree(stored_dir(MlflowClient(), other_run, 9), logged)
    with Elistimator.from_disk(run["model_dir"], verbose=False, cache_dir=run["cache"]) as est:
        assert not est.checkpoints[9]["local"]
        with pytest.raises(ModelDirectoryError, match="is not the one the tracking store recorded"):
            est.restore_ckpt(est.checkpoints[9]["file"])
        assert est.global_step == 27


def test_a_version_without_an_elistimator_checkpoint_is_refused(tmp_path, request, run):
    Elistimator.from_disk(f"runs:/{run['run_id']}", cache_dir=run["cache"], verbose=False).close()
    before = tree(run["cache"])
    client = MlflowClient()
    name = request.node.name
    junk = client.create_run(client.create_experiment(name)).info.run_id
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("not a model")
    client.log_artifacts(junk, str(tmp_path / "junk"), "junk")
    client.create_registered_model(name)
    client.create_model_version(name, source=f"{client.get_run(junk).info.artifact_uri}/junk", run_id=junk)
    with pytest.raises(ModelDirectoryError, match="holds no Elistimator checkpoint"):
        Elistimator.from_disk(f"models:/{name}/1", cache_dir=run["cache"])
    files = {path for path, size in tree(run["cache"]).items() if size >= 0}
    assert files == {path for path, size in before.items() if size >= 0}  # (only empty folders are new)


def test_training_on_a_remote_checkpoint_leaves_the_cache_alone(run, data):
    (x, y), (vx, vy) = data
    est = Elistimator.from_disk(
        f"runs:/{run['run_id']}", checkpoint=9, cache_dir=run["cache"], verbose=False, tracking=False
    )
    cached = {p: p.stat().st_size for p in run["cache"].rglob("*") if p.is_file()}
    assert est.model_dir not in [p.parent for p in cached] and run["cache"] not in est.model_dir.parents
    est.setup(dataset_fn(x, y), dataset_fn(vx, vy), train_saver_args={"max_to_keep": 1})
    for _ in range(2):
        est.train()
        est.save_ckpt()
    est.close()
    assert {p: p.stat().st_size for p in run["cache"].rglob("*") if p.is_file()} == cached
    with Elistimator.from_disk(f"runs:/{run['run_id']}", checkpoint=9, cache_dir=run["cache"], verbose=False) as again:
        assert again.global_step == 9


def test_a_relative_prefix_of_a_pruned_checkpoint_is_relative_to_the_model_directory(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the working directory holds no checkpoints/
    with Elistimator.from_disk(run["model_dir"], verbose=False, cache_dir=run["cache"]) as est:
        assert not est.checkpoints[9]["local"]
        est.restore_ckpt("checkpoints/model-9")
        assert est.global_step == 9
        np.testing.assert_allclose(est.predict(x=run["vx"])["probabilities"], run["predictions"][9], rtol=1e-6)


def test_a_cache_entry_is_hashed_once_per_process_and_a_file_changed_since_is_fetched_again(run, monkeypatch):
    from elistimator_tracking import model_dir

    hashed = []
    real_sha256_of = model_dir.sha256_of
    monkeypatch.setattr(model_dir, "sha256_of", lambda path: hashed.append(path.name) or real_sha256_of(path))
    source = f"runs:/{run['run_id']}"
    for _ in range(3):
        with Elistimator.from_disk(source, checkpoint=18, cache_dir=run["cache"], verbose=False) as est:
            np.testing.assert_allclose(est.predict(x=run["vx"])["probabilities"], run["predictions"][18], rtol=1e-6)
    assert sorted(hashed) == sorted(set(hashed)) and len(hashed) == 3  # .data, .index, .meta: each once
    (data,) = run["cache"].glob("*/runs/*/step-18/checkpoints/model-18.data-*")
    data.write_bytes(data.read_bytes()[:-4] + b"\0\0\0\0")  # damaged in the cache after it was verified
    stat = data.stat()
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # however coarse the clock
    with Elistimator.from_disk(source, checkpoint=18, cache_dir=run["cache"], verbose=False) as est:
        np.testing.assert_allclose(est.predict(x=run["vx"])["probabilities"], run["predictions"][18], rtol=1e-6)
    # the changed file was hashed (a mismatch), the entry dropped, fetched and its 3 files verified again
    assert len(hashed) == 3 + 1 + 3
