"""The store's retention policy (``store_retention=KeepBest(k, metric, mode)``) against a real
``mlflow server``: the store keeps the k best checkpoints and the latest, each of them restores
from ``runs:/`` on a machine without the model directory, a deleted one is a clear error naming
the kept steps, a registered version's checkpoint is never deleted, and a crash in the middle of a
deletion loses nothing kept."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import best_of, fit_targets, pending, stored_steps, target_model_fn
from mlflow import MlflowClient

from elistimator_tracking import CheckpointNotFoundError, Elistimator, KeepBest
from elistimator_tracking._faults import CRASH_ENV
from elistimator_tracking.tracking import sync

#: validation loss = target^2 at steps 3, 6, ... 30; the best three: 0.1 (step 12), 0.2 (21), 0.3 (27)
COURSE = [2.0, 1.0, 0.9, 0.1, 1.5, 0.8, 0.2, 1.2, 0.3, 0.7]


def kept_by_hand(k: int) -> set[int]:
    losses = {3 * (i + 1): value**2 for i, value in enumerate(COURSE)}
    best = sorted(losses, key=losses.get)[:k]
    return set(best) | {max(losses)}


@pytest.mark.slow
def test_the_store_keeps_the_best_k_and_the_latest_and_each_restores_without_the_model_dir(tmp_path, shared_server):
    store = shared_server.uri
    with Elistimator(
        target_model_fn,
        tmp_path / "model",
        verbose=False,
        tracking=store,
        experiment="retention",
        store_retention=KeepBest(2, "loss"),
    ) as est:
        returned = fit_targets(est, COURSE)
        run_id = est.run_id
        assert {step for step, entry in est.checkpoints.items() if entry["stored"]} == kept_by_hand(2)
    assert stored_steps(MlflowClient(store), run_id) == sorted(kept_by_hand(2)) == [12, 21, 30]
    shutil.rmtree(tmp_path / "model")  # another machine: the store alone
    for step in sorted(kept_by_hand(2)):
        with Elistimator.from_disk(
            f"runs:/{run_id}", checkpoint=step, tracking=store, verbose=False, cache_dir=tmp_path / "cache"
        ) as restored:
            assert restored.global_step == step
    with Elistimator.from_disk(
        f"runs:/{run_id}", checkpoint="best", tracking=store, verbose=False, cache_dir=tmp_path / "cache"
    ) as best:
        assert best.global_step == best_of(returned) == 12
    with pytest.raises(CheckpointNotFoundError, match=r"no checkpoint at step 6; checkpoints: \[12, 21, 30\]"):
        Elistimator.from_disk(f"runs:/{run_id}", checkpoint=6, tracking=store, cache_dir=tmp_path / "cache")


@pytest.mark.slow
def test_a_registered_versions_checkpoint_is_never_deleted(tmp_path, shared_server, request):
    store, name = shared_server.uri, request.node.name[:50]
    with Elistimator(
        target_model_fn,
        tmp_path / "model",
        verbose=False,
        tracking=store,
        experiment="retention",
        store_retention=KeepBest(1, "loss"),
    ) as est:
        fit_targets(est, COURSE[:4])  # the best so far: step 12
        version = est.register_best(name)
        with pytest.warns(UserWarning, match="at step 12 stays in .*a registered version uses it"):
            fit_targets(est, [0.05, 1.0])  # step 15 is better: 12 falls out of the best 1
            est.close()
        run_id = est.run_id
    client = MlflowClient(store)
    assert stored_steps(client, run_id) == [12, 15, 18]
    assert client.get_model_version(name, version).tags["elistimator.step"] == "12"


WORKER = """
import sys
from conftest import fit_targets, target_model_fn  # (conftest moves HOME and the default store: named below)
from elistimator_tracking import Elistimator, KeepBest
with Elistimator(target_model_fn, sys.argv[1], verbose=False, tracking=sys.argv[2], experiment="retention-crash",
                 store_retention=KeepBest(1, "loss")) as est:
    fit_targets(est, [1.0, 0.5, 0.2, 0.9, 0.8])
"""


@pytest.mark.slow
@pytest.mark.parametrize("point", ["tracking.model_files_deleted:1", "delivery.sent:9", "journal.appended:12"])
def test_a_crash_in_the_middle_of_a_deletion_loses_nothing_kept(tmp_path, point):
    store = os.environ["MLFLOW_TRACKING_URI"]
    env = {
        **os.environ,
        CRASH_ENV: point,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), str(Path(__file__).parents[1]), *sys.path]),
    }
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(tmp_path / "model"), store],
        env=env,
        timeout=300,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == -9, done.stderr[-2000:]
    assert pending(sync(tmp_path / "model")) == {store: 0}
    saved = json.loads((tmp_path / "model" / "elistimator.json").read_text())
    kept = sorted(int(step) for step, entry in saved["checkpoints"].items() if entry.get("stored", True))
    run_id = saved["tracking"]["run_id"]
    client = MlflowClient(store)
    assert stored_steps(client, run_id) == kept  # every checkpoint the directory says is kept, once
    for step in kept:
        with Elistimator.from_disk(
            f"runs:/{run_id}", checkpoint=step, verbose=False, cache_dir=tmp_path / "cache"
        ) as restored:
            assert restored.global_step == step
