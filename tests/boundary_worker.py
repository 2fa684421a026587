"""Training processes for the crash-boundary and writer-lock tests.

``python boundary_worker.py hold MODEL_DIR STORE``: become the writer of MODEL_DIR (train,
validate, save), print ``holding <pid>``, and wait to be killed. ``fork`` instead of ``hold``: the
same, then fork a child that only sleeps (as a data-loading worker would), and print
``holding <pid> <child pid>``.

``python boundary_worker.py serve``: import everything once, then for each stdin line
``MODEL_DIR STORE CRASH_AT SEED`` (CRASH_AT ``-`` for none) fork a child that trains in
MODEL_DIR (continuing it when it holds checkpoints) through random cycles of train /
validate / save, with ``$ELISTIMATOR_CRASH_AT`` set to CRASH_AT. Prints ``child <pid>`` when
it forks, the child prints ``ready <step>`` and ``cycle <n>``, and the server prints
``exit <pid> <signal>`` when the child ends (signal 0: it finished its cycles). Forking a
process that has imported TensorFlow and MLflow (but opened no session or store and built
no graph; the test also makes OpenBLAS single-threaded: as few threads as possible exist
at the fork) makes a kill-and-restart take about 2 s instead of 10. Lines are written in
one ``write`` each, so a kill never leaves half a line. A child dumps its stacks on SIGUSR1.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from conftest import blobs, dataset_fn, tiny_model_fn  # noqa: E402

from elistimator_tracking import Elistimator, metadata  # noqa: E402
from elistimator_tracking.model_dir import ModelDirectory  # noqa: E402

CYCLES = 30  # a child that never reaches its crash point ends after this many


def say(*words: object) -> None:
    """One line on stdout in one write (atomic on a pipe: a kill never leaves half a line)."""
    os.write(1, (" ".join(map(str, words)) + "\n").encode())


def open_estimator(model_dir: Path, store: str) -> Elistimator:
    """Continue the model in ``model_dir`` when it holds checkpoints, else start one."""
    directory = ModelDirectory(model_dir)
    if metadata.exists(directory) and metadata.read(directory).index.steps():
        return Elistimator.from_disk(model_dir, verbose=False, tracking=store)
    return Elistimator(
        tiny_model_fn,
        model_dir,
        params={"learning_rate": 0.5},
        verbose=False,
        tracking=store,
        experiment="crash-boundaries",
    )


def setup(estimator: Elistimator) -> Elistimator:
    (x, y), (vx, vy) = blobs(70, seed=0), blobs(30, seed=1)
    return estimator.setup(dataset_fn(x, y), dataset_fn(vx, vy), train_saver_args={"max_to_keep": 2})


def hold(model_dir: Path, store: str, fork: bool = False) -> None:
    estimator = setup(open_estimator(model_dir, store))
    estimator.train(steps=3)
    estimator.validate()
    estimator.save_ckpt()
    child = os.fork() if fork else None
    if child == 0:
        while True:
            time.sleep(1)
    say("holding", os.getpid(), *([child] if fork else []))
    while True:
        time.sleep(1)


def train_cycles(model_dir: Path, store: str, seed: int) -> None:
    """Random cycles of train / validate / save, each moment possibly the one killed."""
    rng = random.Random(seed)
    estimator = setup(open_estimator(model_dir, store))
    say("ready", estimator.global_step)
    for cycle in range(CYCLES):
        estimator.train(steps=rng.randint(1, 4))
        validated = rng.random() < 0.6
        if validated:
            estimator.validate()
        if rng.random() < 0.6:
            estimator.save_ckpt()
            if not validated and rng.random() < 0.5:  # metrics that reach a checkpoint already sent
                estimator.validate()
        say("cycle", cycle)
    estimator.close()


def serve() -> None:
    import faulthandler
    import signal

    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401

    import elistimator_tracking.tracking.mlflow_tracker  # noqa: F401 -- imported once, before forking

    # no graph is built here: building one starts a TensorFlow thread, and a fork copies no thread
    say("serving")
    for line in sys.stdin:
        model_dir, store, crash_at, seed = line.split()
        pid = os.fork()
        if pid == 0:
            faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks for stacks of a hung child
            if crash_at != "-":
                os.environ["ELISTIMATOR_CRASH_AT"] = crash_at
            status = 0
            try:
                train_cycles(Path(model_dir), store, int(seed))
            except BaseException as error:  # noqa: BLE001 -- reported, then the child ends
                say("error", type(error).__name__, str(error).replace("\n", " ")[:500])
                status = 1
            finally:
                os._exit(status)
        say("child", pid)
        _, status = os.waitpid(pid, 0)
        say("exit", pid, os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0)


if __name__ == "__main__":
    if sys.argv[1] in ("hold", "fork"):
        hold(Path(sys.argv[2]), sys.argv[3], fork=sys.argv[1] == "fork")
    else:
        serve()
