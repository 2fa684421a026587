"""Training on from a checkpoint older than the latest starts a branch, whichever way it was loaded or
restored: the abandoned checkpoints and validations are dropped with one warning, and the latest
checkpoint afterwards (in memory, after a reload, in the run) is the new branch's (issue 20, finding 1)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import dataset_fn, history, stored_steps, tiny_model_fn, train_epochs
from mlflow import MlflowClient

from elistimator_tracking import Elistimator


@pytest.fixture
def history_dir(tmp_path, data):
    """A tracked model directory with validated checkpoints at steps 9, 18, 27, 36."""
    (x, y), (vx, vy) = data
    with Elistimator(tiny_model_fn, tmp_path / "model", params={"learning_rate": 0.05}, verbose=False) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy), train_saver_args={"max_to_keep": None})
        returned = train_epochs(est, 4)
        run_id = est.run_id
    return {"path": tmp_path / "model", "returned": returned, "run_id": run_id, "cache": tmp_path / "cache"}


def branch_on(est: Elistimator, data) -> dict:
    """setup, train an epoch (on flipped labels: other weights than the abandoned branch), validate, save."""
    (x, y), (vx, vy) = data
    est.setup(dataset_fn(x, 1 - y), dataset_fn(vx, vy))
    with pytest.warns(
        UserWarning,
        match=r"training continues from the restored step 9: the later checkpoints "
        r"\[18, 27, 36\] and validations of the abandoned run are dropped",
    ):
        est.train()
    metrics = est.validate()
    est.save_ckpt()
    return metrics


def check_branched(est: Elistimator, metrics: dict, history_dir: dict) -> None:
    """Only 9 and the new 18 remain, in memory, after restore_latest_ckpt, after a reload and in the run."""
    assert sorted(est.checkpoints) == [9, 18] and est.checkpoints[18]["metrics"] == metrics
    assert metrics != history_dir["returned"][18]  # the new 18, not the abandoned one
    expected = est.predict(x=np.ones((1, 2), np.float32))["probabilities"]
    est.restore_latest_ckpt()
    assert est.global_step == 18
    est.close()
    with Elistimator.from_disk(est.model_dir, verbose=False, tracking=False) as again:
        assert again.global_step == 18 and sorted(again.checkpoints) == [9, 18]
        np.testing.assert_array_equal(again.predict(x=np.ones((1, 2), np.float32))["probabilities"], expected)


@pytest.mark.parametrize("checkpoint", [9, "best"])
def test_from_disk_at_an_older_checkpoint_is_a_branch_point(history_dir, data, checkpoint):
    metric, mode = ("loss", "max") if checkpoint == "best" else ("loss", "min")
    if checkpoint == "best":  # the worst loss is the first checkpoint's: 'best' by max picks step 9
        assert max(history_dir["returned"], key=lambda s: history_dir["returned"][s]["loss"]) == 9
    est = Elistimator.from_disk(history_dir["path"], checkpoint=checkpoint, metric=metric, mode=mode, verbose=False)
    assert est.global_step == 9
    check_branched(est, branch_on(est, data), history_dir)
    recorded = json.loads((history_dir["path"] / "elistimator.json").read_text())["tracking"]
    assert recorded["run_id"] == history_dir["run_id"]  # the same run goes on; the abandoned validations are retracted
    points = history(MlflowClient(), history_dir["run_id"], "validation/loss")
    assert all(math.isnan([v for s, v in points if s == step][-1]) for step in (27, 36))


@pytest.mark.parametrize("how", ["restore_ckpt", "restore_best_ckpt"])
def test_restoring_an_older_checkpoint_is_a_branch_point(history_dir, data, how):
    est = Elistimator.from_disk(history_dir["path"], verbose=False)
    assert est.global_step == 36
    if how == "restore_ckpt":
        est.restore_ckpt("checkpoints/model-9")
    else:
        est.restore_best_ckpt(metric="loss", mode="max")
    assert est.global_step == 9
    check_branched(est, branch_on(est, data), history_dir)


def test_a_run_source_at_an_older_checkpoint_trains_on_without_the_later_ones(history_dir, data):
    est = Elistimator.from_disk(
        f"runs:/{history_dir['run_id']}", checkpoint=9, cache_dir=history_dir["cache"], verbose=False, tracking=False
    )
    assert est.global_step == 9 and sorted(est.checkpoints) == [9]  # the download holds the one checkpoint
    (x, y), (vx, vy) = data
    est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
    est.train()
    metrics = est.validate()
    est.save_ckpt()
    assert sorted(est.checkpoints) == [9, 18] and est.checkpoints[18]["metrics"] == metrics
    est.restore_latest_ckpt()
    assert est.global_step == 18
    est.close()
    assert stored_steps(MlflowClient(), history_dir["run_id"]) == [9, 18, 27, 36]  # the source run is untouched


def test_loading_the_latest_checkpoint_or_only_predicting_drops_nothing(history_dir, data):
    (x, y), (vx, vy) = data
    with Elistimator.from_disk(history_dir["path"], checkpoint=9, verbose=False) as est:
        est.predict(x=vx)
        est.evaluate(dataset_fn(vx, vy))
    with Elistimator.from_disk(history_dir["path"], verbose=False) as est:
        assert sorted(est.checkpoints) == [9, 18, 27, 36]
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        est.train()
        est.save_ckpt()
        assert sorted(est.checkpoints) == [9, 18, 27, 36, 45]
