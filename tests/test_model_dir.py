"""model_dir: str or Path, created when missing; a temporary one lives as long as the object."""

import gc
import os

import pytest

from conftest import tiny_model_fn
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


def test_context_manager_closes(tmp_path, data):
    with Elistimator(tiny_model_fn, tmp_path, verbose=False) as est:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        est.train()
    assert os.path.isdir(tmp_path)
