"""SIGKILL a training process at each named crash point and at random moments: the model directory
always loads at its newest complete checkpoint, and its tracking journal still reaches the run."""

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import history, pending, stored_steps
from mlflow import MlflowClient

from elistimator_tracking import Elistimator
from elistimator_tracking._faults import CRASH_ENV, CRASH_POINTS
from elistimator_tracking.tracking import sync

WORKER = Path(__file__).with_name("crash_worker.py")
PROBE = np.random.default_rng(1).normal(size=(4, 256)).astype(np.float32)


class Worker:
    """The training subprocess, its stdout lines read on a thread."""

    def __init__(self, model_dir: Path, size: str, store: str, crash_at: str = ""):
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(WORKER.parents[1]), *sys.path]),
            "MLFLOW_TRACKING_URI": store,
            CRASH_ENV: crash_at,
        }
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), str(model_dir), size],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=model_dir.parent,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.saved: list = []
        self.last = ""  # the last word read: "saving" at a kill means save_ckpt was interrupted
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.split())

    def wait_for(self, word: str, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while True:
            words = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            self._note(words)
            if words[0] == word:
                return int(words[1])

    def _note(self, words) -> None:
        self.last = words[0]
        if words[0] == "saved":
            self.saved.append(int(words[1]))

    def died(self, timeout: float = 120) -> int:
        """Wait for the process to end (killed by us or by a crash point); return its exit code."""
        code = self.process.wait(timeout=timeout)
        time.sleep(0.1)  # let the reader thread take the last lines
        while not self.lines.empty():  # lines printed before the kill still count
            self._note(self.lines.get())
        return code

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.died()


def loads_newest(model_dir: Path) -> list:
    """Load the directory as the next process would: at its newest local checkpoint. Return the local steps."""
    with Elistimator.from_disk(model_dir, verbose=False, tracking=False) as estimator:
        local = [s for s, c in estimator.checkpoints.items() if c["local"]]
        assert estimator.global_step == max(local) and len(local) <= 3
        assert np.isfinite(estimator.predict(x=PROBE)["logits"]).all()
        return local


# A process that started at step R saves at R + 3, R + 6, ...; killed at the second arrival at a
# crash point, it leaves its newest complete checkpoint at R + this.
NEWEST_AFTER = {
    "save.files": 3,
    "save.journaled": 3,
    "save.committed": 6,
    "validate.journaled": 3,
    "validate.committed": 3,
}


@pytest.mark.slow
def test_a_kill_at_each_named_crash_point_leaves_a_loadable_directory_and_a_deliverable_journal(tmp_path):
    model_dir, store = tmp_path / "model", f"sqlite:///{tmp_path / 'store.db'}"
    assert set(NEWEST_AFTER) | {"delivery.sent"} <= set(CRASH_POINTS)
    step = 0
    for point, advance in NEWEST_AFTER.items():
        worker = Worker(model_dir, "small", store, crash_at=f"{point}:2")
        ready = worker.wait_for("ready")
        assert ready == step, "training continues from the newest complete checkpoint"
        assert worker.died() == -signal.SIGKILL, point
        step = max(loads_newest(model_dir))
        assert step == ready + advance, point
    worker = Worker(model_dir, "small", store, crash_at="delivery.sent:5")  # killed on the tracking thread
    assert worker.died() == -signal.SIGKILL
    printed = max(worker.saved, default=step)  # a save may complete between the kill and its "saved" line
    assert max(loads_newest(model_dir)) in (printed, printed + 3)
    assert pending(sync(model_dir)) == {store: 0}
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("Default").experiment_id])
    with Elistimator.from_disk(model_dir, verbose=False, tracking=False) as estimator:
        checkpoints = estimator.checkpoints
    logged = dict(history(client, run.info.run_id, "validation/loss"))
    assert all(logged[s] == c["metrics"]["loss"] for s, c in checkpoints.items() if s in logged)
    lost = {s for s, c in checkpoints.items() if c["metrics"] and s not in logged}
    missing = set(checkpoints) - set(stored_steps(client, run.info.run_id))
    assert (lost, missing) == (set(), set())  # journaled before committed: nothing lost at any boundary


@pytest.mark.slow
def test_sigkill_at_random_moments_never_loses_the_newest_complete_checkpoint(tmp_path):
    rng = random.Random(1234)
    model_dir, store = tmp_path / "model", f"sqlite:///{tmp_path / 'store.db'}"
    newest_saved, during_save = None, 0
    for _kill in range(3):
        worker = Worker(model_dir, "wide", store)
        ready_step = worker.wait_for("ready")
        if newest_saved is not None:
            assert ready_step == newest_saved, "training must continue from the newest complete checkpoint"
        for _ in range(rng.randint(1, 3)):
            worker.wait_for("saving")
        time.sleep(rng.uniform(0.0, 0.3))  # inside save_ckpt, or past it
        worker.kill()
        during_save += worker.last == "saving"
        local = loads_newest(model_dir)
        newest_saved = max(local)
        assert newest_saved >= max(worker.saved, default=0)  # a save may also complete right before the kill
    stray = [
        p.name
        for p in (model_dir / "checkpoints").iterdir()
        if p.name != "checkpoint" and p.name.split(".")[0] not in {f"model-{s}" for s in local}
    ]
    assert len(stray) <= 3  # at most the files of the one save the last kill interrupted
    print(f"\n3 SIGKILLs at random moments, {during_save} of them inside save_ckpt; newest step {newest_saved}")
