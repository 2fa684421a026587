"""SIGKILL a training process at many moments, during save_ckpt too; the model directory survives."""

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

from elistimator_tracking import Elistimator

WORKER = Path(__file__).with_name("crash_worker.py")
KILLS = 12


class Worker:
    """The training subprocess, its stdout lines read on a thread."""

    def __init__(self, model_dir: Path):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(WORKER.parents[1]), *sys.path])}
        self.process = subprocess.Popen([sys.executable, str(WORKER), str(model_dir)], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True, env=env)
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.saved: list = []
        self.last = ""  # the last word read: "saving" at a kill means save_ckpt was interrupted
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.split())

    def wait_for(self, word: str, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while True:
            words = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            self.last = words[0]
            if words[0] == "saved":
                self.saved.append(int(words[1]))
            if words[0] == word:
                return int(words[1])

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        while not self.lines.empty():  # lines printed before the kill still count
            words = self.lines.get()
            self.last = words[0]
            if words[0] == "saved":
                self.saved.append(int(words[1]))


@pytest.mark.slow
def test_sigkill_at_many_moments_never_loses_the_newest_complete_checkpoint(tmp_path):
    rng = random.Random(1234)
    model_dir = tmp_path / "model"
    newest_saved, survived, during_save = None, 0, 0
    probe = np.random.default_rng(1).normal(size=(4, 256)).astype(np.float32)
    for kill in range(KILLS):
        worker = Worker(model_dir)
        ready_step = worker.wait_for("ready")
        if newest_saved is not None:
            assert ready_step == newest_saved, "training must continue from the newest complete checkpoint"
        if kill % 2 == 0:  # right after it announces a save: inside save_ckpt or just past it
            for _ in range(rng.randint(1, 3)):
                worker.wait_for("saving")
            time.sleep(rng.uniform(0.0, 0.06))
        else:  # anywhere in training or saving
            worker.wait_for("saving")
            time.sleep(rng.uniform(0.0, 0.5))
        worker.kill()
        if worker.saved:
            newest_saved = max(worker.saved)
        during_save += worker.last == "saving"

        estimator = Elistimator.from_disk(model_dir, verbose=False)
        local = [s for s, c in estimator.checkpoints.items() if c["local"]]
        assert estimator.global_step == max(local)
        assert estimator.global_step >= newest_saved  # a save may also have completed right before the kill
        newest_saved = estimator.global_step
        assert np.isfinite(estimator.predict(x=probe)["logits"]).all()
        assert len(local) <= 3
        estimator.close()
        survived += 1
    stray = [p.name for p in (model_dir / "checkpoints").iterdir()
             if p.name != "checkpoint" and p.name.split(".")[0] not in {f"model-{s}" for s in local}]
    assert len(stray) <= 3  # at most the files of the one save the last kill interrupted
    print(f"\nsurvived {survived} SIGKILLs, {during_save} of them inside save_ckpt; newest step {newest_saved}")
    assert survived == KILLS and during_save >= 1
