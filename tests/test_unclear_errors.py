"""Small unclear errors (issue 30, findings 5 and 8): each is one line naming the file or the cause.

Before the fix (main 5fa99ec): ``elistimator runs ... | head -1`` printed ``[Errno 32] Broken pipe`` and
exited 1; ``elistimator sync <a file>`` said the directory "does not exist"; a registered version whose
``MLmodel`` is not YAML gave yaml's parser error; a full cache disk and a link the server refuses both
surfaced as MLflow's "Failed to download artifacts from path 'step-9', please ensure that the path is
correct."; a corrupt ``estimator.json`` a bare ``JSONDecodeError``; training data without ``.batch()``
failed in Keras (``The last dimension of the inputs to a Dense layer should be defined. Found None``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import blobs, dataset_fn, tiny_model_fn, train_epochs
from mlflow import MlflowClient
from mlflow_server import MlflowServer

from elistimator_tracking import Elistimator, InvalidValueError, ModelDirectoryError, TrackingError
from elistimator_tracking._tf import tf

SCRIPT = Path(sys.executable).parent / "elistimator"


def unbatched():
    x, y = blobs(70)
    return tf.data.Dataset.from_tensor_slices({"x": x, "y": y})


@pytest.mark.parametrize("validation", ["batched", "unbatched", None])
def test_training_data_without_batch_says_the_dataset_yields_unbatched_elements(validation):
    vx, vy = blobs(30, seed=1)
    validation_fn = {"batched": dataset_fn(vx, vy), "unbatched": unbatched, None: None}[validation]
    est = Elistimator(tiny_model_fn, verbose=False, tracking=False)
    with pytest.raises(InvalidValueError, match=r"the training dataset yields unbatched elements \(") as caught:
        est.setup(unbatched, validation_fn)
    message = str(caught.value)
    assert "end the training input function with .batch(batch_size)" in message and "\n" not in message
    if validation == "batched":
        assert "'x': float32 (2), where the other data yields (?, 2)" in message
    else:
        assert "'y': int32 () is one value, not a batch" in message
    est.close()


def cli(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *argv], capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """An experiment with a run and a registered version, in a SQLite store of its own."""
    root = tmp_path_factory.mktemp("unclear")
    uri = f"sqlite:///{root / 'store.db'}"
    MlflowClient(uri).create_experiment("unclear", artifact_location=(root / "artifacts").as_uri())
    (x, y), (vx, vy) = blobs(70), blobs(30, seed=1)
    with Elistimator(tiny_model_fn, root / "model", verbose=False, tracking=uri, experiment="unclear") as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        train_epochs(est, 1)
        est.register_best("unclear")
    return uri


def test_a_reader_that_closes_the_pipe_is_not_a_failure(store):
    """``elistimator runs unclear | head -1``: the reader is gone before the table is written."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [str(SCRIPT), "runs", "unclear", "--tracking-uri", store],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (0, "")


def test_sync_of_a_file_says_it_is_a_file(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    done = cli("sync", str(tmp_path / "notes.txt"))
    assert done.returncode == 1
    assert done.stderr == f"elistimator sync: error: '{tmp_path / 'notes.txt'}' is a file, not a model directory\n"


def test_a_registered_version_whose_mlmodel_is_not_yaml_is_one_line_naming_the_file(store, tmp_path):
    version = MlflowClient(store, registry_uri=store).get_model_version("unclear", "1")
    mlmodel = Path(version.source.removeprefix("file://")) / "MLmodel"
    kept = mlmodel.read_text()
    mlmodel.write_text("flavors: {python_function: [unclosed\n")
    try:
        with pytest.raises(ModelDirectoryError, match=r"^the MLmodel file of models:/unclear/1 \(version 1\) is not a"):
            Elistimator.from_disk("models:/unclear/1", tracking=store, verbose=False, cache_dir=tmp_path / "cache")
        done = cli("download", "models:/unclear/1", str(tmp_path / "copy"), "--tracking-uri", store)
        assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
        assert "the MLmodel file of models:/unclear/1 (version 1) is not a valid MLmodel (YAML)" in done.stderr
    finally:
        mlmodel.write_text(kept)


def test_a_corrupt_estimator_json_is_one_line_naming_the_file(tmp_path):
    import estimator_programs as programs

    from elistimator_tracking import estimator as tf_estimator

    def new():
        return tf_estimator.Estimator(programs.model_fn, model_dir=str(tmp_path), params={}, tracking=False)

    est = new()
    est.train(programs.train_input_fn(), steps=2)
    est.close()
    (tmp_path / "estimator.json").write_text('{"layout": ')
    with pytest.raises(
        ModelDirectoryError, match=rf"^{tmp_path / 'estimator.json'} is corrupt or truncated \("
    ) as caught:
        new()
    assert "\n" not in str(caught.value)


@pytest.mark.slow
def test_a_full_cache_disk_and_a_link_the_server_refuses_are_one_line_naming_the_cause(tmp_path):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs to fill needs root")
    server = MlflowServer(tmp_path / "server").start()
    cache = tmp_path / "small-disk"
    cache.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(cache)], capture_output=True)
    if mounted.returncode != 0:
        server.stop()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        (x, y), (vx, vy) = blobs(70), blobs(30, seed=1)
        with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=server.uri) as est:
            est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            train_epochs(est, 1)
            run_id = est.run_id
        with open(cache / "filler", "wb", buffering=0) as filler:  # fill the disk to the last byte
            for size in (4096, 1):
                try:
                    while True:
                        filler.write(b"\0" * size)
                except OSError:
                    pass
        full = rf"^the disk of the download cache is full \(no space left on device, writing {cache}/"
        with pytest.raises(TrackingError, match=full):
            Elistimator.from_disk(f"runs:/{run_id}", tracking=server.uri, verbose=False, cache_dir=cache)
        env = {**os.environ, "ELISTIMATOR_CACHE_DIR": str(cache)}
        done = cli("download", f"runs:/{run_id}", str(tmp_path / "copy"), "--tracking-uri", server.uri, env=env)
        assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
        assert "the disk of the download cache is full (no space left on device" in done.stderr

        stored = next((tmp_path / "server" / "artifacts").rglob("model-9.index")).parent  # the logged model's
        (stored / "passwords").symlink_to("/etc/passwd")  # the server refuses to serve it
        expected = (
            rf"^the store refused to send \S*checkpoints/passwords of the checkpoint at step 9 of run {run_id}: "
            "Invalid path: resolved path is outside the artifact directory$"
        )
        with pytest.raises(TrackingError, match=expected):
            Elistimator.from_disk(f"runs:/{run_id}", tracking=server.uri, verbose=False, cache_dir=tmp_path / "cache")
        done = cli("download", f"runs:/{run_id}", str(tmp_path / "copy2"), "--tracking-uri", server.uri)
        assert done.returncode == 1 and done.stderr.count("\n") == 1 and "the store refused to send" in done.stderr
    finally:
        subprocess.run(["umount", str(cache)], capture_output=True)
        server.stop()
