"""Kills at each named boundary between elistimator.json, the tracking journal and the store.

Whatever moment a training process dies at, every checkpoint and validation that
``elistimator.json`` holds reaches the run exactly once with its values, by the next run
in that directory or by ``sync``; validations of an abandoned branch never attach to a
later checkpoint. The processes are forked by ``boundary_worker.py serve`` and killed for
real (SIGKILL by a crash point, or by the test at a random moment).
"""

from __future__ import annotations

import json
import math
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import blobs, dataset_fn, pending, stored_dir, tiny_model_fn
from mlflow import MlflowClient

from elistimator_tracking import Elistimator
from elistimator_tracking.tracking import sync
from elistimator_tracking.tracking.resolve import RunCheckpoints

WORKER = Path(__file__).with_name("boundary_worker.py")
READY_TIMEOUT = 120  # a child is ready within seconds; one that is not has hung


@dataclass
class Child:
    pid: int
    lines: list[list[str]] = field(default_factory=list)
    signal: int | None = None

    @property
    def errors(self) -> list[str]:
        return [" ".join(words) for words in self.lines if words[0] == "error"]


class Trainers:
    """``boundary_worker.py serve``: forks one training child per ``run``."""

    def __init__(self, log: Path):
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(WORKER.parents[1]), *sys.path]),
            "OPENBLAS_NUM_THREADS": "1",
        }
        env.pop("ELISTIMATOR_CRASH_AT", None)
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(log, "ab"),
            text=True,
            env=env,
        )
        self.lines: queue.Queue[list[str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._next(300, "serving")

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.split():
                self.lines.put(line.split())

    def _next(self, timeout: float, word: str | None = None) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            words = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if word is None or words[0] == word:
                return words

    def run(
        self,
        model_dir: Path,
        store: str,
        crash_at: str = "-",
        seed: int = 0,
        kill_after: float | None = None,
        timeout: float = 300,
    ) -> Child:
        """One child until it dies (at ``crash_at``, after ``kill_after`` seconds of training, or
        at the end of its cycles)."""
        self.process.stdin.write(f"{model_dir} {store} {crash_at} {seed}\n")
        self.process.stdin.flush()
        child = Child(int(self._next(timeout, "child")[1]))
        killer = None
        while True:
            try:
                words = self._next(READY_TIMEOUT if not child.lines else timeout)
            except queue.Empty:
                self._stacks_of(child)
            child.lines.append(words)
            if words[0] == "ready" and kill_after is not None:
                killer = threading.Timer(kill_after, _kill, (child.pid,))
                killer.start()
            if words[:2] == ["exit", str(child.pid)]:
                child.signal = int(words[2])
                break
        if killer is not None:
            killer.cancel()
        return child

    def _stacks_of(self, child: Child) -> None:
        """A child that never got ready: fail with its Python stacks (faulthandler, on SIGUSR1)."""
        try:
            os.kill(child.pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass
        time.sleep(2)
        _kill(child.pid)
        pytest.fail(
            f"training process {child.pid} hung (server exit code {self.process.poll()}, lines "
            f"{child.lines[-5:]}); the end of the log:\n" + self.log.read_text(errors="replace")[-6000:]
        )

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def trainers(tmp_path_factory):
    server = Trainers(tmp_path_factory.mktemp("trainers") / "stderr.log")
    yield server
    server.close()


def assert_the_run_holds_the_model_directory(model_dir: Path, store: str) -> tuple[int, int]:
    """Every checkpoint of elistimator.json is in the run with its checksums and metrics; every
    validation value is in the run exactly once since the last retraction at its step (a NaN
    point: an abandoned branch's values came before it), and the latest there, so runs:/ sees
    it. Returns the numbers of checkpoints and validations checked."""
    saved = json.loads((model_dir / "elistimator.json").read_text())
    run_id = saved["tracking"]["run_id"]  # the record's JSON, as every release writes it
    client = MlflowClient(store)
    for step, record in saved["checkpoints"].items():
        logged = json.loads((stored_dir(client, run_id, int(step)) / "elistimator.json").read_text())
        assert logged["checkpoints"][step]["files"] == record["files"], f"checkpoint {step}: other files"
        assert logged["validations"].get(step) == saved["validations"].get(step), f"checkpoint {step}: metrics"
    histories: dict[str, list] = {}
    for step, metrics in saved["validations"].items():
        for name, value in metrics.items():
            history = histories.setdefault(name, client.get_metric_history(run_id, f"validation/{name}"))
            points = sorted((point for point in history if point.step == int(step)), key=lambda p: p.timestamp)
            retractions = [i for i, point in enumerate(points) if math.isnan(point.value)]
            current = points[retractions[-1] + 1 :] if retractions else points
            assert [point.value for point in current] == [value], f"validation/{name} at {step}: {points}"
    index = RunCheckpoints(run_id, store).index()
    for step in saved["checkpoints"]:
        assert index.metrics(int(step)) == saved["validations"].get(step, {}), f"runs:/ metrics at {step}"
    return len(saved["checkpoints"]), len(saved["validations"])


@pytest.mark.slow
@pytest.mark.parametrize("boundary", ["save.committed:2", "validate.committed:2"])
@pytest.mark.parametrize("recovery", ["sync", "next run"])
def test_a_kill_right_after_the_commit_loses_nothing(trainers, tmp_path, boundary, recovery):
    model_dir, store = tmp_path / "model", f"sqlite:///{tmp_path / 'store.db'}"
    child = trainers.run(model_dir, store, crash_at=boundary, seed=3)
    assert child.signal == signal.SIGKILL and not child.errors
    if recovery == "sync":
        assert pending(sync(model_dir)) == {store: 0}
    else:
        child = trainers.run(model_dir, store, seed=4)
        assert child.signal == 0 and not child.errors
    assert_the_run_holds_the_model_directory(model_dir, store)


def test_validations_of_an_abandoned_branch_never_attach_to_a_later_checkpoint(tmp_path, data):
    (x, y), (vx, vy) = data
    model_dir, store = tmp_path / "model", f"sqlite:///{tmp_path / 'store.db'}"
    with Elistimator(tiny_model_fn, model_dir, verbose=False, tracking=store) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        est.train(steps=5).validate()
        est.save_ckpt()
        est.train(steps=5).validate()  # step 10: validated, never saved; the branch is abandoned below
    with pytest.warns(UserWarning, match=r"later validations at steps \[10\]"):
        with Elistimator.from_disk(model_dir, verbose=False, tracking=store) as resumed:  # latest: step 5
            resumed.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            resumed.train(steps=5)
            resumed.save_ckpt()  # step 10 again, not validated
            assert resumed.checkpoints[10]["metrics"] == {}
    assert_the_run_holds_the_model_directory(model_dir, store)


BOUNDARIES = [
    "save.files",
    "save.journaled",
    "save.committed",
    "validate.journaled",
    "validate.committed",
    "branch.journaled",
    "branch.committed",
    "journal.append",
    "journal.appended",
    "delivery.sent",
]


@pytest.mark.slow
def test_fifty_kills_at_random_moments_and_at_every_boundary_lose_and_duplicate_nothing(trainers, tmp_path):
    """Each named boundary twice (its 1st and 3rd passage; a branch's 1st, twice), and kills at random
    moments, in one model directory; after ``sync`` the run holds exactly what elistimator.json holds."""
    rng = random.Random(2024)
    model_dir, store = tmp_path / "model", f"sqlite:///{tmp_path / 'store.db'}"
    plan = [f"{point}:{nth}" for nth in (1, 3) for point in BOUNDARIES] + ["random"] * 32
    rng.shuffle(plan)
    kills: dict[str, int] = {}
    for number, moment in enumerate(plan + ["random"] * 20):
        if sum(kills.values()) >= 52:  # a random kill can come after a process finished its cycles
            break
        if moment == "random":
            child = trainers.run(model_dir, store, seed=number, kill_after=rng.uniform(0.05, 1.5))
        elif moment.startswith("branch"):  # a process branches once, at its first training step
            leave_a_validation_past_the_latest_checkpoint(model_dir, store)
            child = trainers.run(model_dir, store, crash_at=f"{moment.split(':')[0]}:1", seed=number)
        else:
            child = trainers.run(model_dir, store, crash_at=moment, seed=number)
        assert not child.errors, child.errors
        if child.signal == signal.SIGKILL:
            kills[moment.split(":")[0]] = kills.get(moment.split(":")[0], 0) + 1
    assert pending(sync(model_dir)) == {store: 0}
    checkpoints, validations = assert_the_run_holds_the_model_directory(model_dir, store)
    with Elistimator.from_disk(model_dir, verbose=False, tracking=False) as loaded:
        assert loaded.global_step == max(loaded.checkpoints)
    total = sum(kills.values())
    print(
        f"\n{total} SIGKILLs ({kills.get('random', 0)} at random moments, "
        f"{total - kills.get('random', 0)} at named boundaries: {dict(sorted(kills.items()))}); "
        f"the run holds all {checkpoints} checkpoints and {validations} validations of elistimator.json "
        f"exactly once"
    )
    assert total >= 50 and all(kills.get(point) for point in BOUNDARIES)


def leave_a_validation_past_the_latest_checkpoint(model_dir: Path, store: str) -> None:
    """So that the next training process starts a branch (it drops that validation)."""
    (x, y), (vx, vy) = blobs(70, seed=0), blobs(30, seed=1)
    with Elistimator.from_disk(model_dir, verbose=False, tracking=store) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        est.train(steps=1).validate()
