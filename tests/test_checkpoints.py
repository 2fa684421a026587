"""save_ckpt, the checkpoint index, pruning, restore_* and the selection policy."""

import json

import numpy as np
import pytest
from conftest import best_of, dataset_fn, tiny_model_fn, train_epochs

from elistimator_tracking import CheckpointNotFoundError, Elistimator, ModelDirectoryError
from elistimator_tracking._tf import tf
from elistimator_tracking.checkpoints import CheckpointIndex, CheckpointRecord, best_step, latest_step, select_step
from elistimator_tracking.metadata import METADATA_FILE


def metadata(model_dir):
    return json.loads((model_dir / METADATA_FILE).read_text())


def test_save_returns_the_prefix_and_indexes_it(estimator, tmp_path):
    estimator.train()
    prefix = estimator.save_ckpt()
    assert prefix == str(tmp_path / "model" / "checkpoints" / "model-9")
    assert estimator.checkpoints == {9: {"file": prefix, "metrics": {}, "local": True, "stored": True}}
    entry = metadata(tmp_path / "model")["checkpoints"]["9"]
    assert entry["prefix"] == "checkpoints/model-9"  # relative: a moved directory still loads
    assert set(entry["files"]) == {"model-9.index", "model-9.data-00000-of-00001", "model-9.meta"}


def test_metrics_attach_whichever_comes_first_and_reach_disk_at_once(estimator, tmp_path):
    estimator.train()
    first = estimator.validate()  # validate, then save
    assert metadata(tmp_path / "model")["validations"]["9"] == first
    estimator.save_ckpt()
    estimator.train()
    estimator.save_ckpt()  # save, then validate
    assert estimator.checkpoints[18]["metrics"] == {}
    second = estimator.validate()
    assert estimator.checkpoints[9]["metrics"] == first
    assert estimator.checkpoints[18]["metrics"] == second
    assert metadata(tmp_path / "model")["validations"]["18"] == second


def test_pruning_keeps_history_and_the_tf_checkpoint_state(tmp_path, data):
    (x, y), (vx, vy) = data
    est = Elistimator(tiny_model_fn, tmp_path, verbose=False)
    est.setup(dataset_fn(x, y), dataset_fn(vx, vy), train_saver_args={"max_to_keep": 2})
    returned = train_epochs(est, 4)
    assert [(s, c["local"]) for s, c in est.checkpoints.items()] == [(9, False), (18, False), (27, True), (36, True)]
    assert {s: c["metrics"] for s, c in est.checkpoints.items()} == returned
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == [
        "checkpoint",
        "model-27.data-00000-of-00001",
        "model-27.index",
        "model-27.meta",
        "model-36.data-00000-of-00001",
        "model-36.index",
        "model-36.meta",
    ]
    from elistimator_tracking._tf import tf

    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")) == str(tmp_path / "checkpoints" / "model-36")
    est.close()


def test_restore_best_and_latest(tmp_path, data):
    (x, y), (vx, vy) = data
    est = Elistimator(tiny_model_fn, tmp_path, verbose=False, params={"learning_rate": 0.05})
    est.setup(dataset_fn(x, y), dataset_fn(vx, vy), train_saver_args={"max_to_keep": None})
    predictions = {}
    returned = train_epochs(est, 3, each=lambda step: predictions.update({step: est.predict(vx)["probabilities"]}))
    est.train()  # moves on past the last checkpoint
    best = best_of(returned)
    assert est.restore_best_ckpt() is est and est.global_step == best
    np.testing.assert_array_equal(est.predict(vx)["probabilities"], predictions[best])
    est.restore_latest_ckpt()
    assert est.global_step == 27
    assert est.restore_best_ckpt(metric="loss", mode="max").global_step == best_of(returned, mode="max")
    est.restore_ckpt(est.checkpoints[9]["file"])
    np.testing.assert_array_equal(est.predict(vx)["probabilities"], predictions[9])
    est.restore_ckpt("checkpoints/model-18")  # relative to the model directory
    assert est.global_step == 18
    with pytest.warns(UserWarning, match=r"restored step 18: the later checkpoints \[27\] .* are dropped"):
        est.train(2)  # training continues from the restored step: a new branch
    assert est.global_step == 20
    assert {s: c["metrics"] for s, c in est.checkpoints.items()} == {9: returned[9], 18: returned[18]}
    assert "27" not in json.loads((tmp_path / METADATA_FILE).read_text())["validations"]
    from elistimator_tracking._tf import tf

    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")) == str(tmp_path / "checkpoints" / "model-18")
    assert not list((tmp_path / "checkpoints").glob("model-27.*"))
    est.save_ckpt()
    assert est.checkpoints[20]["metrics"] == {}  # no stale metrics of the abandoned run
    assert est.restore_latest_ckpt().global_step == 20
    est.close()


def test_resaving_a_step_uncommits_its_files_first(estimator, tmp_path, monkeypatch):
    """A crash while a committed step is re-saved leaves the older checkpoints loadable."""
    estimator.train()
    estimator.save_ckpt()
    estimator.train()
    estimator.save_ckpt()
    from elistimator_tracking.model_dir import ModelDirectory

    def crash(self, prefix):
        raise SystemExit("killed after saver.save, before the metadata")

    monkeypatch.setattr(ModelDirectory, "checksums", crash)
    with pytest.raises(SystemExit):
        estimator.save_ckpt()  # same step 18 again
    monkeypatch.undo()
    loaded = Elistimator.from_disk(tmp_path / "model", verbose=False)
    assert loaded.global_step == 9 and sorted(loaded.checkpoints) == [9]
    loaded.close()


def test_restore_ckpt_by_path_verifies_indexed_checkpoints(estimator, tmp_path):
    estimator.train()
    nine = estimator.save_ckpt()
    estimator.train()
    eighteen = estimator.save_ckpt()
    for suffix in (".index", ".data-00000-of-00001"):
        (tmp_path / "model" / "checkpoints" / f"model-18{suffix}").write_bytes(open(nine + suffix, "rb").read())
    with pytest.raises(ValueError, match="step 18 .* is damaged"):
        estimator.restore_ckpt(eighteen)


def test_max_to_keep_carries_over_when_other_saver_args_change(tmp_path, data):
    (x, y), _ = data
    est = Elistimator(tiny_model_fn, tmp_path, verbose=False)
    est.setup(dataset_fn(x, y), train_saver_args={"max_to_keep": None})
    saver_ops = len(est.graph.get_operations())
    est.setup(dataset_fn(x, y), train_saver_args={"save_relative_paths": True})
    assert len(est.graph.get_operations()) > saver_ops  # a new saver for the new arguments
    for _ in range(7):
        est.train()
        est.save_ckpt()
    assert all(c["local"] for c in est.checkpoints.values()) and len(est.checkpoints) == 7
    est.close()


def test_first_setup_failing_after_the_build_leaves_nothing_built(tmp_path, data):
    (x, y), _ = data
    est = Elistimator(tiny_model_fn, tmp_path, verbose=False)
    with pytest.raises(ValueError, match="validation dataset lacks feature"):
        est.setup(dataset_fn(x, y), lambda: dataset_fn(x, y)().map(lambda d: {"x": d["x"]}))
    assert est.graph is None and est.session is None
    est.setup(dataset_fn(x[:, :1], y)).train()  # a retry with other shapes builds afresh
    assert est.input_signature["x"] == "float32 (?, 1)"
    est.close()


def test_restore_errors(estimator, tmp_path):
    with pytest.raises(LookupError, match=r"there is no checkpoint: call save_ckpt\(\)"):
        estimator.restore_latest_ckpt()
    estimator.train()
    estimator.save_ckpt()
    with pytest.raises(LookupError, match=r"no checkpoint has a validation metric 'loss'.*validate\(\) at the step"):
        estimator.restore_best_ckpt()
    estimator.validate()
    with pytest.raises(LookupError, match=r"no checkpoint has a validation metric 'f1'.*\['accuracy', 'loss'\]"):
        estimator.restore_best_ckpt(metric="f1")
    with pytest.raises(ValueError, match="mode must be 'min', 'max' or 'auto', got 'lowest'"):
        estimator.restore_best_ckpt(mode="lowest")
    with pytest.raises(CheckpointNotFoundError, match=r"no checkpoint at .*model-4'.*checkpoints on local disk: \['/"):
        estimator.restore_ckpt(tmp_path / "model" / "checkpoints" / "model-4")
    with pytest.raises(ValueError, match="train_saver_args\\['max_to_keep'\\] must be a positive int or None"):
        estimator.setup(lambda: None, train_saver_args={"max_to_keep": 0})
    with pytest.raises(ValueError, match=r"unsupported key\(s\) \['keep_checkpoint_every_n_hours'\]"):
        estimator.setup(lambda: None, train_saver_args={"keep_checkpoint_every_n_hours": 1})


def test_restore_of_a_pruned_checkpoint_is_a_clear_error(tmp_path, data):
    (x, y), (vx, vy) = data
    est = Elistimator(tiny_model_fn, tmp_path, verbose=False, params={"learning_rate": 0.5}, tracking=False)
    est.setup(dataset_fn(x, y), dataset_fn(vx, vy), train_saver_args={"max_to_keep": 1})
    returned = train_epochs(est, 2)
    pruned = r"step 9 is no longer on local disk \(pruned by max_to_keep=1\) and no MLflow run holds it"
    with pytest.raises(CheckpointNotFoundError, match=pruned):
        est.restore_best_ckpt(mode="max" if best_of(returned, mode="max") == 9 else "min")  # step 9's side
    est.close()
    with pytest.raises(CheckpointNotFoundError, match=pruned):
        Elistimator.from_disk(tmp_path, checkpoint=9)


def test_a_damaged_checkpoint_is_not_restored(estimator, tmp_path):
    estimator.train()
    prefix = estimator.save_ckpt()
    with open(prefix + ".data-00000-of-00001", "r+b") as handle:
        handle.write(b"\x00\x01\x02")
    with pytest.raises(ValueError, match=r"step 9 .* is damaged: model-9.data-00000-of-00001 does not match"):
        estimator.restore_latest_ckpt()


def test_new_model_refuses_a_directory_with_checkpoints(estimator, tmp_path):
    estimator.train()
    estimator.save_ckpt()
    estimator.close()  # while it is open the directory is busy (test_writer_lock.py)
    with pytest.raises(
        ModelDirectoryError,
        match=r"already holds an Elistimator model with checkpoints at steps \[9\]; "
        r"continue it with Elistimator.from_disk",
    ):
        Elistimator(tiny_model_fn, tmp_path / "model")


def test_selection_policy():
    index = CheckpointIndex(
        [CheckpointRecord(s, f"checkpoints/model-{s}") for s in (10, 20, 30, 40)],
        {
            10: {"loss": 0.5, "acc": 0.7},
            20: {"loss": 0.2, "acc": 0.9},
            30: {"loss": 0.2},
            40: {"loss": float("nan"), "acc": 0.95},
            50: {"loss": 0.01},
        },
    )
    assert best_step(index) == 30  # ties go to the later step; 50 has no checkpoint
    assert best_step(index, "loss", "max") == 10  # NaN never wins
    assert best_step(index, "acc", "max") == 40
    assert best_step(index, "acc", "min") == 10  # 30 has no acc: it never wins
    assert latest_step(index) == 40
    assert select_step(index, "best", "acc", "max") == 40 and select_step(index, 20) == 20
    with pytest.raises(CheckpointNotFoundError, match=r"no checkpoint at step 25; checkpoints: \[10, 20, 30, 40\]"):
        select_step(index, 25)
    for bad in (True, "newest", -1, 2.0):
        with pytest.raises(ValueError, match="checkpoint must be 'latest', 'best' or a global step"):
            select_step(index, bad)


def test_save_returns_the_same_path_form_as_the_checkpoints_entry(tmp_path, data):
    """A model_dir reached through a symlink keeps the user's path in both places."""
    (x, y), _ = data
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with Elistimator(tiny_model_fn, tmp_path / "link", verbose=False, tracking=False) as est:
        est.setup(dataset_fn(x, y))
        prefix = est.train().save_ckpt()
        assert prefix == est.checkpoints[9]["file"] == str(tmp_path / "link" / "checkpoints" / "model-9")


def test_max_to_keep_defaults_to_5(estimator):
    for _ in range(7):
        estimator.train()
        estimator.save_ckpt()
    assert [s for s, c in estimator.checkpoints.items() if c["local"]] == [27, 36, 45, 54, 63]
    assert len(estimator.checkpoints) == 7


def test_session_args_reach_the_session(tmp_path, data):
    """README: session_args go to tf.Session (config, target)."""
    (x, y), _ = data
    config = tf.ConfigProto(device_count={"CPU": 2}, inter_op_parallelism_threads=1)
    with Elistimator(
        tiny_model_fn, tmp_path, verbose=False, tracking=False, session_args={"config": config, "target": ""}
    ) as est:
        est.setup(dataset_fn(x, y)).train()
        devices = [d.name for d in est.session.list_devices() if d.device_type == "CPU"]
    assert len(devices) == 2
    with Elistimator(tiny_model_fn, tmp_path / "default", verbose=False, tracking=False) as est:
        est.setup(dataset_fn(x, y))
        assert len([d for d in est.session.list_devices() if d.device_type == "CPU"]) == 1
    with pytest.raises(TypeError, match=r"session_args has unknown key\(s\) \['graph'\]"):
        Elistimator(tiny_model_fn, tmp_path / "bad", session_args={"graph": None})
