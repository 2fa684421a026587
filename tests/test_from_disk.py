"""Elistimator.from_disk: load without the model function, anywhere the directory moved to."""

import json
import shutil

import numpy as np
import pytest
from conftest import dataset_fn, tiny_model_fn, train_epochs

from elistimator_tracking import CheckpointNotFoundError, Elistimator, ModelDirectoryError
from elistimator_tracking.metadata import METADATA_FILE


@pytest.fixture
def trained_dir(tmp_path, data):
    """A model directory with checkpoints at steps 9, 18, 27 (validated), then moved elsewhere."""
    (x, y), (vx, vy) = data
    est = Elistimator(tiny_model_fn, tmp_path / "original", verbose=False, params={"learning_rate": 0.05})
    est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
    outputs = {}
    train_epochs(est, 3, each=lambda step: outputs.update({step: est.predict(vx)["probabilities"]}))
    checkpoints = est.checkpoints
    est.close()
    moved = tmp_path / "moved"
    shutil.move(str(tmp_path / "original"), moved)
    return moved, outputs, checkpoints


def snapshot(directory):
    return {
        p.relative_to(directory): (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.rglob("*") if p.is_file()
    }


def test_loads_latest_from_a_moved_directory(trained_dir, data):
    directory, outputs, checkpoints = trained_dir
    _, (vx, vy) = data
    est = Elistimator.from_disk(directory, verbose=False)
    assert est.global_step == 27 and est.model_dir == directory
    np.testing.assert_array_equal(est.predict(vx)["probabilities"], outputs[27])
    np.testing.assert_array_equal(est.predict(x=vx)["probabilities"], outputs[27])
    batches = list(est.predict(input_fn=dataset_fn(vx, vy)))
    np.testing.assert_allclose(np.concatenate([b["probabilities"] for b in batches]), outputs[27], rtol=1e-6)
    assert est.evaluate(dataset_fn(vx, vy)) == pytest.approx(checkpoints[27]["metrics"])
    assert {s: c["metrics"] for s, c in est.checkpoints.items()} == {s: c["metrics"] for s, c in checkpoints.items()}
    assert est.checkpoints[27]["file"] == str(directory / "checkpoints" / "model-27")
    assert est.input_signature == {"x": "float32 (?, 2)", "y": "int32 (?)"}
    est.close()


@pytest.mark.parametrize("checkpoint", ["best", 9, 18])
def test_loads_a_chosen_checkpoint(trained_dir, data, checkpoint):
    directory, outputs, checkpoints = trained_dir
    _, (vx, _) = data
    est = Elistimator.from_disk(directory, checkpoint=checkpoint, verbose=False)
    if checkpoint == "best":
        checkpoint = min(checkpoints, key=lambda s: checkpoints[s]["metrics"]["loss"])
    assert est.global_step == checkpoint
    np.testing.assert_array_equal(est.predict(vx)["probabilities"], outputs[checkpoint])
    est.close()


def test_setup_continues_training_and_keeps_history(trained_dir, data):
    directory, outputs, _ = trained_dir
    (x, y), (vx, vy) = data
    est = Elistimator.from_disk(directory, checkpoint=18, verbose=False)
    graph_ops = len(est.graph.get_operations())
    est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
    est.train()
    assert est.global_step == 27
    metrics = est.validate()
    est.save_ckpt()
    est.train(4)
    est.save_ckpt()
    assert sorted(est.checkpoints) == [9, 18, 27, 31]
    assert est.checkpoints[27]["metrics"] == metrics  # re-saved at 27 with the new validation
    assert len(est.graph.get_operations()) == graph_ops
    est.close()
    again = Elistimator.from_disk(directory, verbose=False)
    assert again.global_step == 31 and sorted(again.checkpoints) == [9, 18, 27, 31]
    again.close()


def test_saver_args_survive_and_prune_across_processes(trained_dir, data):
    directory, _, _ = trained_dir
    (x, y), _ = data
    est = Elistimator.from_disk(directory, verbose=False)
    est.setup(dataset_fn(x, y), train_saver_args={"max_to_keep": 2})
    est.train()
    est.save_ckpt()
    assert [s for s, c in est.checkpoints.items() if c["local"]] == [27, 36]
    est.close()
    assert json.loads((directory / METADATA_FILE).read_text())["max_to_keep"] == 2


def test_bad_directories_are_clear_errors_and_change_nothing(trained_dir, tmp_path):
    directory, _, _ = trained_dir
    with pytest.raises(ModelDirectoryError, match="does not exist"):
        Elistimator.from_disk(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelDirectoryError, match="is not an Elistimator model directory: it has no elistimator.json"):
        Elistimator.from_disk(tmp_path / "empty")
    with pytest.raises(TypeError, match="model_dir must be a str or pathlib.Path"):
        Elistimator.from_disk(None)

    metadata_path = directory / METADATA_FILE
    good = metadata_path.read_text()
    cases = {
        "truncated": good[: len(good) // 2],
        "not json": "\x00\x01garbage",
        "not elistimator": json.dumps({"hello": 1}),
        "outside": good.replace('"checkpoints/model-27"', '"../../etc/model-27"'),
        "absolute": good.replace('"checkpoints/model-27"', '"/etc/model-27"'),
        "foreign file": good.replace('"model-27.index"', '"../../../../etc/hostname"'),
        "bad metrics": good.replace('"validations": {', '"validations": {"1": {"loss": "oops"}, ', 1),
    }
    messages = {
        "truncated": "is corrupt or truncated",
        "not json": "is corrupt or truncated",
        "not elistimator": "is not Elistimator metadata",
        "outside": "points outside the model directory",
        "absolute": "holds an absolute path",
        "foreign file": "that is not one of its own",
        "bad metrics": "malformed validation metrics",
    }
    for case, text in cases.items():
        metadata_path.write_text(text)
        before = snapshot(directory)
        with pytest.raises(ModelDirectoryError, match=messages[case]):
            Elistimator.from_disk(directory)
        assert snapshot(directory) == before, case
    metadata_path.write_text(json.dumps({**json.loads(good), "checkpoints": {}}))
    with pytest.raises(CheckpointNotFoundError, match="has no checkpoint: call save_ckpt"):
        Elistimator.from_disk(directory)
    metadata_path.write_text(good)

    before = snapshot(directory)
    with pytest.raises(LookupError, match=r"no checkpoint at step 5; checkpoints: \[9, 18, 27\]"):
        Elistimator.from_disk(directory, checkpoint=5)
    with pytest.raises(ValueError, match="checkpoint must be 'latest', 'best' or a global step, got 'newest'"):
        Elistimator.from_disk(directory, checkpoint="newest")
    with pytest.raises(LookupError, match="no checkpoint has a validation metric 'f1'"):
        Elistimator.from_disk(directory, checkpoint="best", metric="f1")
    assert snapshot(directory) == before
