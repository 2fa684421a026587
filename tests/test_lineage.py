"""Lineage in every run: the datasets it used, the code of its model function, the machine it ran
on (system metrics), and registered versions that know their inputs. Real SQLite stores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import blobs, dataset_fn, pending, registered_tiny_model, tiny_model_fn, train_epochs
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from elistimator_tracking import Elistimator, named_input
from elistimator_tracking._faults import CRASH_ENV
from elistimator_tracking._tf import tf
from elistimator_tracking.datasets import describe_input, source_of
from elistimator_tracking.tracking import TrackingWarning, sync
from elistimator_tracking.tracking.mlflow_tracker import MlflowTracker


@pytest.fixture
def store(tmp_path):
    return f"sqlite:///{tmp_path / 'store.db'}"


def inputs_of(store: str, run_id: str):
    """``{context: dataset}`` of a run's dataset inputs (each context must appear once)."""
    found = {}
    for item in MlflowClient(store).get_run(run_id).inputs.dataset_inputs:
        (context,) = [tag.value for tag in item.tags if tag.key == "mlflow.data.context"]
        assert context not in found, f"{context} logged twice"
        found[context] = item.dataset
    return found


def schema_of(dataset) -> dict:
    features = json.loads(json.loads(dataset.schema)["mlflow_tensorspec"]["features"])
    return {f["name"]: (f["tensor-spec"]["dtype"], f["tensor-spec"]["shape"]) for f in features}


def test_a_run_records_its_training_validation_and_evaluation_data(tmp_path, store, data):
    (x, y), (vx, vy) = data
    tx, ty = blobs(20, seed=7)
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=store) as est:
        est.setup(named_input(dataset_fn(x, y), "blobs-train"), dataset_fn(vx, vy))
        train_epochs(est, 1)
        est.evaluate(lambda: tf.data.Dataset.from_tensor_slices({"x": tx, "y": ty}).batch(5))
    run_id = est.run_id  # known once close() delivered the start, however slow the store
    found = inputs_of(store, run_id)
    assert sorted(found) == ["evaluation", "training", "validation"]
    assert [found[c].name for c in ("training", "validation", "evaluation")] == [
        "blobs-train",
        "input_fn",
        "evaluation-data",
    ]
    assert schema_of(found["training"]) == {"x": ("float32", [-1, 2]), "y": ("int32", [-1])}
    assert {d.source_type for d in found.values()} == {"in-memory"}
    assert len({d.digest for d in found.values()}) == 3

    # the same data in another run: the same digest; one changed value: another
    assert describe_input(dataset_fn(x, y), "training").digest == found["training"].digest
    changed = x.copy()
    changed[3, 1] += 0.5
    assert describe_input(dataset_fn(changed, y), "training").digest != found["training"].digest
    assert describe_input(dataset_fn(x, y, batch=4), "training").digest != found["training"].digest


def test_a_file_source_is_recorded_and_the_digest_follows_the_files(tmp_path):
    lines = tmp_path / "data" / "part-0.txt"
    lines.parent.mkdir()
    lines.write_text("a\nb\n")
    (tmp_path / "data" / "part-1.txt").write_text("c\n")

    def one_file():
        return tf.data.TextLineDataset([str(lines)]).batch(2)

    def listed():
        return (
            tf.data.Dataset.list_files(str(tmp_path / "data" / "*.txt"), shuffle=False)
            .interleave(tf.data.TextLineDataset)
            .batch(2)
        )

    first = describe_input(one_file, "evaluation")
    assert first.name == "one_file" and first.files == (str(lines),) and source_of(first) == str(lines)
    assert first.features == ({"key": 0, "dtype": "string", "shape": [None], "tensor": ""},)
    assert describe_input(one_file, "evaluation").digest == first.digest
    several = describe_input(listed, "training")
    assert several.file_count == 2 and source_of(several) == str(tmp_path / "data")
    lines.write_text("a\nb\nchanged\n")
    assert describe_input(one_file, "evaluation").digest != first.digest
    assert describe_input(listed, "training").digest != several.digest


def test_a_registered_version_has_a_signature_and_an_input_example(tmp_path, data, request):
    (_, _), (vx, _) = data
    name = request.node.name
    expected = registered_tiny_model(tmp_path / "model", data, name, rows=3)
    info = mlflow.models.get_model_info(f"models:/{name}@champion")
    signature = info.signature.to_dict()
    assert json.loads(signature["inputs"]) == [
        {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}, "name": "x"}
    ]  # the label 'y' is not a prediction input
    assert {o["name"]: o["tensor-spec"] for o in json.loads(signature["outputs"])} == {
        "classes": {"dtype": "int32", "shape": [-1]},
        "probabilities": {"dtype": "float32", "shape": [-1, 2]},
    }
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    example = mlflow.models.Model.load(f"models:/{name}@champion").load_input_example(
        mlflow.artifacts.download_artifacts(f"models:/{name}@champion")
    )
    assert {k: (v.dtype, v.shape) for k, v in example.items()} == {"x": (np.float32, (1, 2))}
    for given in ({"x": vx[:3]}, vx[:3]):  # the dict and the positional form
        np.testing.assert_array_equal(model.predict(given)["classes"], expected["classes"])
    with pytest.raises(MlflowException, match=r"'x'.*Shape of input \(3, 1\) does not match expected shape \(-1, 2\)"):
        model.predict({"x": vx[:3, :1]})


def test_the_model_functions_file_is_an_artifact_with_secrets_redacted(tmp_path, store, data):
    (x, y), _ = data
    module = tmp_path / "my_model.py"
    module.write_text(
        "from conftest import tiny_model_fn\n"
        "DB_PASSWORD = 'hunter2'\n"
        "SETTINGS = {'api_key': 'k-123', 'layers': 3}\n\n\n"
        "def my_model_fn(features, is_training, params):\n"
        "    return tiny_model_fn(features, is_training, params)\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        from my_model import my_model_fn
    finally:
        sys.path.remove(str(tmp_path))
    with Elistimator(my_model_fn, tmp_path / "model", verbose=False, tracking=store) as est:
        est.setup(dataset_fn(x, y))
    run_id = est.run_id
    client = MlflowClient(store)
    assert client.get_run(run_id).data.tags["elistimator.model_fn.source"] == "source/my_model.py"
    logged = Path(client.download_artifacts(run_id, "source/my_model.py", str(tmp_path / "down"))).read_text()
    assert "def my_model_fn(features, is_training, params):" in logged and "'layers': 3" in logged
    assert "hunter2" not in logged and "k-123" not in logged and logged.count("<redacted>") == 2


@pytest.mark.parametrize("on", [True, False])
def test_system_metrics_are_sampled_only_when_asked_for(tmp_path, store, data, monkeypatch, on):
    (x, y), _ = data
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.1")
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=store, system_metrics=on) as est:
        est.setup(dataset_fn(x, y))
        deadline = time.monotonic() + 30
        while (
            on
            and not any(
                op.get("op") == "metrics" and "system/cpu_utilization_percentage" in op["metrics"]
                for op in journaled(tmp_path / "model")
            )
            and time.monotonic() < deadline
        ):
            est.train()  # work for the sampler to see, until it logged a point
    run_id = est.run_id
    metrics = MlflowClient(store).get_run(run_id).data.metrics
    system = {key for key in metrics if key.startswith("system/")}
    if on:
        assert {
            "system/cpu_utilization_percentage",
            "system/system_memory_usage_megabytes",
            "system/disk_usage_percentage",
        } <= system
        assert 0 <= metrics["system/cpu_utilization_percentage"] <= 100 * os.cpu_count()
    else:
        assert not system
    assert not any(t.name == "elistimator-system-metrics" for t in __import__("threading").enumerate())


def journaled(model_dir: Path):
    """Every operation in the model directory's journals (delivered ones stay until close)."""
    for journal in (model_dir / "tracking").glob("store-*/journal.jsonl"):
        for line in journal.read_text().splitlines():
            yield json.loads(line)


def test_datasets_kept_while_the_store_was_unreachable_are_delivered_once_by_sync(tmp_path, store, data):
    (x, y), (vx, vy) = data
    tracker = MlflowTracker("notascheme://nowhere", start_timeout=2, close_timeout=2)
    with pytest.warns(TrackingWarning):
        with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=tracker) as est:
            est.setup(dataset_fn(x, y), named_input(dataset_fn(vx, vy), "held-out"))
            est.evaluate(dataset_fn(*blobs(10, seed=3)))
    spool = next((tmp_path / "model" / "tracking").glob("store-*"))
    journal = (spool / "journal.jsonl").read_text()
    assert pending(sync(tmp_path / "model", tracking_uri=store)) == {store: 0}
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("Default").experiment_id])
    found = inputs_of(store, run.info.run_id)
    assert {c: d.name for c, d in found.items()} == {
        "training": "input_fn",
        "validation": "held-out",
        "evaluation": "input_fn",
    }
    (spool,) = (tmp_path / "model" / "tracking").glob("store-*")  # moved with the work to the store it reached
    (spool / "journal.jsonl").write_text(journal)  # a replay, as after a crash before the acknowledgement
    (spool / "delivered").write_text("0\n")
    sync(tmp_path / "model", tracking_uri=store)
    assert len(client.get_run(run.info.run_id).inputs.dataset_inputs) == 3


KILLED_AFTER_SENDING_A_DATASET = """
import sys
sys.path.insert(0, {tests!r})
import conftest
from conftest import blobs, dataset_fn, tiny_model_fn
from elistimator_tracking import Elistimator
est = Elistimator(tiny_model_fn, {model_dir!r}, verbose=False, tracking={store!r})
est.setup(dataset_fn(*blobs(70)), dataset_fn(*blobs(30, seed=1)))
est.tracker.flush(60)
print("not killed", flush=True)
"""


def test_a_dataset_sent_just_before_a_crash_reaches_the_run_exactly_once(tmp_path, store):
    """Killed after the store took the training dataset but before the journal marked it: the next
    run in the directory replays it, and the run still holds each dataset once."""
    script = KILLED_AFTER_SENDING_A_DATASET.format(
        tests=str(Path(__file__).parent), model_dir=str(tmp_path / "model"), store=store
    )
    env = {**os.environ, CRASH_ENV: "delivery.sent:4", "TMPDIR": str(tmp_path)}  # the 4th delivery: see below
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr[-2000:]
    kinds = [op["op"] for op in journaled(tmp_path / "model")]
    assert kinds[:5] == ["start", "artifacts", "params", "input", "input"]  # the model function's file
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("Default").experiment_id])
    assert [i.dataset.name for i in client.get_run(run.info.run_id).inputs.dataset_inputs] == ["input_fn"]
    assert pending(sync(tmp_path / "model")) == {store: 0}
    assert sorted(inputs_of(store, run.info.run_id)) == ["training", "validation"]


def test_bad_dataset_names_and_system_metrics_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match="a dataset name must be a non-empty string, got ''"):
        named_input(dataset_fn(*blobs(10)), "")
    with pytest.raises(TypeError, match="named_input needs an input function, got str"):
        named_input("data.csv", "data")
    with pytest.raises(TypeError, match="system_metrics must be True or False, got 'yes'"):
        Elistimator(tiny_model_fn, tmp_path / "model", system_metrics="yes")
    assert not (tmp_path / "model").exists()
