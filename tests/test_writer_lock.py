"""One writer per model directory: a second writer fails at once, readers still work, a kill frees it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import dataset_fn, pending, tiny_model_fn

from elistimator_tracking import Elistimator
from elistimator_tracking.errors import ModelDirectoryBusy, ModelDirectoryError
from elistimator_tracking.tracking import sync

WORKER = Path(__file__).with_name("boundary_worker.py")


def holder_pattern(pid: int) -> str:
    return rf"is being written by another Elistimator \(PID {pid} on {socket.gethostname()}"


def test_a_second_writer_in_the_same_process_fails_at_once_naming_the_holder(estimator, tmp_path, data):
    (x, y), (vx, vy) = data
    model_dir = tmp_path / "model"
    with pytest.raises(ModelDirectoryBusy, match=holder_pattern(os.getpid())) as caught:
        Elistimator(tiny_model_fn, model_dir, verbose=False)
    assert str(model_dir) in str(caught.value) and isinstance(caught.value, ModelDirectoryError)
    estimator.train().validate()
    estimator.save_ckpt()
    reader = Elistimator.from_disk(model_dir, verbose=False)
    assert reader.predict(x=vx)["classes"].shape == (30,)  # reading needs no lock
    assert reader.evaluate(dataset_fn(vx, vy))["loss"] > 0
    for write in (lambda: reader.setup(dataset_fn(x, y)), reader.save_ckpt):
        with pytest.raises(ModelDirectoryBusy, match=holder_pattern(os.getpid())):
            write()
    estimator.close()  # the writer is gone: the reader may write now
    reader.setup(dataset_fn(x, y), dataset_fn(vx, vy))
    reader.train(steps=2)
    reader.save_ckpt()
    assert sorted(reader.checkpoints) == [9, 11]
    reader.close()


def holder(mode: str, model_dir: Path, store: str) -> subprocess.Popen:
    """``boundary_worker.py hold|fork``: a process that becomes the writer of ``model_dir``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(WORKER.parents[1]), *sys.path])}
    return subprocess.Popen(
        [sys.executable, str(WORKER), mode, str(model_dir), store],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )


@pytest.mark.slow
def test_a_writer_in_another_process_blocks_writers_and_sync_not_readers_and_a_kill_frees_it(tmp_path, data):
    (x, y), (vx, vy) = data
    model_dir, store = tmp_path / "model", f"sqlite:///{tmp_path / 'store.db'}"
    worker = holder("hold", model_dir, store)
    try:
        words = worker.stdout.readline().split()
        assert words[0] == "holding", words
        pid = int(words[1])
        with Elistimator.from_disk(model_dir, verbose=False, tracking=store) as reader:
            assert np.isfinite(reader.predict(x=vx)["probabilities"]).all()
            with pytest.raises(ModelDirectoryBusy, match=holder_pattern(pid)):
                reader.setup(dataset_fn(x, y))
        with pytest.raises(ModelDirectoryBusy, match=holder_pattern(pid)):
            Elistimator(tiny_model_fn, model_dir, verbose=False)
        with pytest.raises(ModelDirectoryBusy, match=holder_pattern(pid)):
            sync(model_dir)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    with Elistimator.from_disk(model_dir, verbose=False, tracking=store) as writer:  # the kill released the lock
        writer.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        writer.train(steps=2).save_ckpt()
        assert sorted(writer.checkpoints) == [3, 5]
    assert pending(sync(model_dir)) == {store: 0}


@pytest.mark.slow
def test_a_child_forked_by_the_writer_does_not_keep_the_lock_when_the_writer_is_killed(tmp_path, data):
    """Issue 30: a child the writer forks (a data-loading worker, say) outlives it. Before: after the
    SIGKILL, the next writer got ModelDirectoryBusy naming the dead parent (the child's inherited
    descriptor kept the flock)."""
    (x, y), (vx, vy) = data
    model_dir, store = tmp_path / "model", f"sqlite:///{tmp_path / 'store.db'}"
    worker = holder("fork", model_dir, store)
    child = None
    try:
        words = worker.stdout.readline().split()
        assert words[0] == "holding", words
        parent, child = int(words[1]), int(words[2])
        with pytest.raises(ModelDirectoryBusy, match=rf"PID {parent} "):  # the parent is the writer
            Elistimator(tiny_model_fn, model_dir, verbose=False)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        os.kill(child, 0)  # the child lives on
        with Elistimator.from_disk(model_dir, verbose=False, tracking=False) as writer:
            writer.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            writer.train(steps=2).save_ckpt()
            assert sorted(writer.checkpoints) == [3, 5]
    finally:
        worker.kill()
        worker.wait(timeout=30)
        if child is not None:
            os.kill(child, signal.SIGKILL)
