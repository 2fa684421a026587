"""model_dir: str or Path, created when missing; a temporary one lives as long as the object."""

import gc

import pytest
from conftest import dataset_fn, tiny_model_fn

from elistimator_tracking import Elistimator, ModelDirectoryError


def test_path_and_str_are_accepted(tmp_path, monkeypatch):
    assert Elistimator(tiny_model_fn, tmp_path / "a" / "b").model_dir == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir()
    monkeypatch.chdir(tmp_path)
    relative = Elistimator(tiny_model_fn, "rel").model_dir
    assert relative == tmp_path / "rel" and relative.is_absolute()


def test_model_dir_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelDirectoryError, match="exists and is not a directory"):
        Elistimator(tiny_model_fn, tmp_path / "file")


def test_temporary_model_dir_lives_as_long_as_the_object():
    est = Elistimator(tiny_model_fn)
    path = est.model_dir
    est.close()
    assert path.is_dir()  # closing does not throw the work away
    del est
    gc.collect()
    assert not path.exists()


def test_context_manager_closes_the_session_and_keeps_the_directory(tmp_path, data):
    (x, y), _ = data
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=False) as est:
        est.setup(dataset_fn(x, y)).train().save_ckpt()
        session = est.session
    with pytest.raises(RuntimeError, match="this Elistimator is closed"):
        est.train()
    with pytest.raises(RuntimeError, match="closed Session"):
        session.run(est.graph.get_operations()[0].outputs[0])
    with Elistimator.from_disk(tmp_path / "model", verbose=False, tracking=False) as again:
        assert again.global_step == 9
