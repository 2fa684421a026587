"""Bad input is a clear error naming what was wrong, found before anything is imported, uploaded or created."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import blobs, dataset_fn, stored_dir, tiny_model_fn
from mlflow import MlflowClient

from elistimator_tracking import Elistimator
from elistimator_tracking.errors import ModelDirectoryError


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def tracked(tmp_path, data):
    """A model directory tracked to its own store: checkpoints 9 and 18, 9 pruned locally."""
    (x, y), (vx, vy) = data
    store = f"sqlite:///{tmp_path / 'store.db'}"
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=store) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy), train_saver_args={"max_to_keep": 1})
        for _ in range(2):
            est.train().validate()
            est.save_ckpt()
    return tmp_path / "model", store, est.run_id


def test_a_flipped_byte_in_a_saved_graph_is_found_before_it_is_imported(tracked, tmp_path):
    model_dir, store, run_id = tracked
    flip_a_byte(model_dir / "checkpoints" / "model-18.meta")
    with pytest.raises(ModelDirectoryError, match=r"step 18 .* damaged: model-18\.meta does not match its checksum"):
        Elistimator.from_disk(model_dir, verbose=False)
    flip_a_byte(stored_dir(MlflowClient(store), run_id, 9) / "checkpoints" / "model-9.meta")
    with pytest.raises(ModelDirectoryError, match=r"model-9\.meta does not match its checksum"):
        Elistimator.from_disk(model_dir, checkpoint=9, verbose=False, cache_dir=tmp_path / "cache")  # pruned
    with pytest.raises(ModelDirectoryError, match=r"model-9\.meta does not match its checksum"):
        Elistimator.from_disk(
            f"runs:/{run_id}", checkpoint=9, tracking=store, verbose=False, cache_dir=tmp_path / "cache"
        )
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("model-9.meta"))


def test_sources_that_are_no_model_directory_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"'s3://x': from_disk does not read s3:/ sources"):
        Elistimator.from_disk("s3://x")
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ModelDirectoryError, match=r"a_file' is a file, not a model directory"):
        Elistimator.from_disk(tmp_path / "a_file")


def test_validation_data_of_another_width_names_the_feature_and_both_shapes_at_setup(tmp_path):
    (x, y), (_, vy) = blobs(40, 0), blobs(16, 1)
    wide = np.concatenate([x, x, x, x], axis=1)  # 8 features
    est = Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=False)
    with pytest.raises(ValueError, match=r"feature 'x': training \(\?, 8\), validation \(\?, 7\)"):
        est.setup(dataset_fn(wide, y), dataset_fn(wide[:16, :7], vy))
    est.close()


def test_a_ragged_one_off_input_names_the_feature(estimator):
    with pytest.raises(ValueError, match=r"feature 'x' .*ragged|feature 'x' .*not a rectangular"):
        estimator.predict(x=[[1, 2], [3]])


@pytest.mark.parametrize(
    "change, what",
    [
        (lambda saved: saved.update(max_to_keep=True), "max_to_keep"),
        (lambda saved: saved["validations"]["9"].update(loss=True), "validation metrics at step '9'"),
    ],
)
def test_booleans_in_elistimator_json_are_refused(estimator, tmp_path, change, what):
    estimator.train().validate()
    estimator.save_ckpt()
    estimator.close()
    path = tmp_path / "model" / "elistimator.json"
    saved = json.loads(path.read_text())
    change(saved)
    path.write_text(json.dumps(saved))
    with pytest.raises(ModelDirectoryError, match=what):
        Elistimator.from_disk(tmp_path / "model", verbose=False)


def test_a_checkpoint_file_linking_outside_the_model_directory_is_refused(estimator, tmp_path):
    estimator.train()
    estimator.save_ckpt()
    estimator.close()
    data = tmp_path / "model" / "checkpoints" / "model-9.data-00000-of-00001"
    outside = tmp_path / "outside.data"
    data.rename(outside)
    os.symlink(outside, data)
    with pytest.raises(ModelDirectoryError, match=r"model-9\.data-00000-of-00001.* points outside the model directory"):
        Elistimator.from_disk(tmp_path / "model", verbose=False)


def test_an_invalid_registered_model_name_fails_before_anything_is_uploaded(tracked):
    model_dir, store, run_id = tracked
    from elistimator_tracking.tracking.registry import register_best

    with Elistimator.from_disk(model_dir, verbose=False) as est:
        with pytest.raises(ValueError, match=r"'bad/name:1'.* cannot contain '/' or ':'"):
            est.register_best("bad/name:1")
        with pytest.raises(ValueError, match=r"alias"):
            est.register_best("good", alias="bad alias!")
    with pytest.raises(ValueError, match=r"'bad/name:1'.* cannot contain '/' or ':'"):
        register_best(run_id, "bad/name:1", tracking_uri=store)
    assert [a.path for a in MlflowClient(store).list_artifacts(run_id)] == [
        "source",
        "tensorboard",
    ]  # checkpoints: logged models


def test_a_wrong_tracking_argument_creates_nothing(tmp_path):
    with pytest.raises(TypeError, match="tracking must be"):
        Elistimator(tiny_model_fn, tmp_path / "model", tracking="")
    assert not (tmp_path / "model").exists()
