"""Checkpoints as MLflow 3 logged models (real SQLite store): one per checkpoint at its step, the
validation metrics linked to it, found by ``search_logged_models``, loadable from ``models:/m-<id>``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import fit_targets, logged_models_of, pending, target_model_fn, zero_targets
from mlflow import MlflowClient

from elistimator_tracking import Elistimator, metadata
from elistimator_tracking._faults import CRASH_ENV
from elistimator_tracking.model_dir import ModelDirectory
from elistimator_tracking.tracking import sync
from elistimator_tracking.tracking.resolve import download_logged_model


@pytest.fixture
def store(tmp_path):
    return f"sqlite:///{tmp_path / 'store.db'}"


def train_run(tmp_path, store, name, course, save_first=False):
    """A run of ``target_model_fn`` over ``course`` (validation loss = target^2 per epoch)."""
    with Elistimator(
        target_model_fn, tmp_path / name, verbose=False, tracking=store, experiment="targets", run_name=name
    ) as est:
        if save_first:
            est.setup(lambda: zero_targets(), zero_targets)
        returned = fit_targets(est, course)
    # the run id as the model directory records it once close() delivered everything (a store that
    # is slow to create its tables may answer after start() stopped waiting)
    return metadata.read(ModelDirectory(tmp_path / name)).tracking.run_id, returned


def checkpoint_models(client, run_id):
    return {int(m.tags["elistimator.step"]): m for m in logged_models_of(client, run_id)}


def test_every_checkpoint_is_a_logged_model_of_its_run_at_its_step_with_its_metrics(tmp_path, store):
    run_id, returned = train_run(tmp_path, store, "first", [3.0, 1.0, 2.0])
    client = MlflowClient(store)
    models = checkpoint_models(client, run_id)
    assert sorted(models) == sorted(returned) == [3, 6, 9]
    outputs = {o.model_id: o.step for o in client.get_run(run_id).outputs.model_outputs}
    assert outputs == {m.model_id: step for step, m in models.items()}
    for step, model in models.items():
        assert str(model.status) == "READY" and model.name == f"step-{step}"
        linked = {m.key: (m.step, m.value) for m in model.metrics}
        assert linked == {f"validation/{k}": (step, pytest.approx(v)) for k, v in returned[step].items()}
    # the run keeps one validation point per step: linking did not log them twice
    assert [m.step for m in client.get_metric_history(run_id, "validation/loss")] == [3, 6, 9]


def test_search_logged_models_orders_checkpoints_across_runs_by_validation_loss(tmp_path, store, monkeypatch):
    first, a = train_run(tmp_path, store, "first", [3.0, 0.5])
    second, b = train_run(tmp_path, store, "second", [2.0, 0.25, 1.0])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)  # MLflow's fluent API searches there
    experiment = MlflowClient(store).get_experiment_by_name("targets")
    found = mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id],
        output_format="list",
        order_by=[{"field_name": "metrics.validation/loss", "ascending": True}],
    )
    losses = [(m.source_run_id, int(m.tags["elistimator.step"])) for m in found]
    expected = sorted(
        [(first, s) for s in a] + [(second, s) for s in b],
        key=lambda rs: {
            **{(first, s): v["loss"] for s, v in a.items()},
            **{(second, s): v["loss"] for s, v in b.items()},
        }[rs],
    )
    assert losses == expected and losses[0] == (second, 6)


def test_a_checkpoint_model_loads_with_pyfunc_and_from_disk(tmp_path, store, monkeypatch):
    run_id, returned = train_run(tmp_path, store, "first", [3.0, 0.5])
    model = checkpoint_models(MlflowClient(store), run_id)[6]  # trained on 0.5 last
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)  # where mlflow.pyfunc looks models:/ up
    loaded = mlflow.pyfunc.load_model(f"models:/{model.model_id}")
    assert float(np.asarray(loaded.predict({"t": np.zeros(2, np.float32)})["w"])[0]) == pytest.approx(0.5)
    with Elistimator.from_disk(f"models:/{model.model_id}", tracking=store, verbose=False) as est:
        assert est.global_step == 6 and float(est.predict(t=np.zeros(1, np.float32))["w"][0]) == pytest.approx(0.5)


def test_a_crash_between_creating_and_filling_a_logged_model_leaves_one_model_per_checkpoint(tmp_path, store):
    """Killed right after the store created the second checkpoint's logged model (still empty): sync
    finds it again by its checkpoint key and fills it; no checkpoint gets two models, none stays empty."""
    worker = Path(__file__).with_name("crash_worker.py")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(worker.parents[1]), *sys.path]),
        "MLFLOW_TRACKING_URI": store,
        CRASH_ENV: "tracking.model_created:2",
    }
    done = subprocess.run(
        [sys.executable, str(worker), str(tmp_path / "model"), "small"],
        env=env,
        timeout=300,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert done.returncode == -9  # the crash point, not an error
    client = MlflowClient(store)
    run_id = metadata.read(ModelDirectory(tmp_path / "model")).tracking.run_id
    before = logged_models_of(client, run_id)
    assert sorted(str(m.status) for m in before).count("PENDING") == 1  # the one the crash left empty
    assert pending(sync(tmp_path / "model")) == {store: 0}
    # training runs on while the tracking thread catches up, so a busy machine may have saved more
    # checkpoints than one page of search results (100) by the time the crash point is reached
    steps = metadata.read(ModelDirectory(tmp_path / "model")).index.steps()
    models = logged_models_of(client, run_id)
    assert sorted(int(m.tags["elistimator.step"]) for m in models) == steps
    assert {str(m.status) for m in models} == {"READY"}
    assert {m.model_id for m in before} <= {m.model_id for m in models}
    for model in models:  # each holds its checkpoint, checksums verified
        held = download_logged_model(f"models:/{model.model_id}", tmp_path / "cache", store)
        assert metadata.read(ModelDirectory(held)).index.steps() == [int(model.tags["elistimator.step"])]


def test_a_run_from_before_logged_models_still_loads_and_registers(tmp_path, store):
    """A run holding only ``checkpoints/step-<N>/`` (as release 0.1 logged them before checkpoints were
    logged models; here the fixture of release 0.1, its logged models deleted): ``runs:/`` loads it,
    and registering its best checkpoint gives it a logged model."""
    from elistimator_tracking.tracking.registry import register_best

    model = tmp_path / "model"
    shutil.copytree(Path(__file__).parent / "fixtures" / "release-0.1-spooled", model)
    assert pending(sync(model, tracking_uri=store)) == {store: 0}
    run_id = metadata.read(ModelDirectory(model)).tracking.run_id
    client = MlflowClient(store)
    for logged in checkpoint_models(client, run_id).values():
        client.delete_logged_model(logged.model_id)
    assert checkpoint_models(client, run_id) == {}
    with Elistimator.from_disk(f"runs:/{run_id}", checkpoint="best", tracking=store, verbose=False) as est:
        assert est.global_step == 9
    version, kept = register_best(run_id, "old-layout", tracking_uri=store, cache_dir=tmp_path / "cache")
    assert (version, kept) == ("1", None)
    models = checkpoint_models(client, run_id)
    registered = client.get_model_version("old-layout", "1")
    assert list(models) == [9] and registered.tags["elistimator.model_id"] == models[9].model_id
