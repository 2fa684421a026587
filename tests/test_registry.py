"""register_best: a checkpoint becomes a Model Registry version that is also an MLflow Model."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from conftest import dataset_fn, tiny_model_fn, train_epochs
from elistimator_tracking import Elistimator


@pytest.fixture
def trained(tmp_path, data):
    """Three validated checkpoints in the session's tracking store."""
    (x, y), (vx, vy) = data
    est = Elistimator(tiny_model_fn, tmp_path / "model", params={"learning_rate": 0.05}, verbose=False)
    est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
    train_epochs(est, 3)
    yield est
    est.close()


def test_register_best_registers_the_best_checkpoint_with_its_metrics(trained, request):
    name = request.node.name
    best = min(trained.checkpoints, key=lambda s: (trained.checkpoints[s]["metrics"]["loss"], -s))
    version = trained.register_best(name)
    client = MlflowClient()
    registered = client.get_model_version_by_alias(name, "champion")
    assert str(registered.version) == version == "1" and registered.run_id == trained.run_id
    assert registered.tags["elistimator.step"] == str(best)
    assert float(registered.tags["validation/loss"]) == pytest.approx(trained.checkpoints[best]["metrics"]["loss"])
    assert registered.tags["elistimator.selected_by"] == "validation/loss (min)"
    assert trained.register_best(name, metric="accuracy", mode="max", alias="champion") == "2"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"


def test_a_registered_version_loads_as_a_pyfunc_model(trained, data, request):
    _, (vx, _) = data
    name = request.node.name
    trained.register_best(name)
    trained.restore_best_ckpt()
    expected = trained.predict(x=vx)
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    for given in ({"x": vx}, vx):
        answer = model.predict(given)
        np.testing.assert_array_equal(answer["classes"], expected["classes"])
        np.testing.assert_allclose(answer["probabilities"], expected["probabilities"], rtol=1e-6)


def test_register_best_needs_tracking_and_a_recorded_metric(tmp_path, trained, data):
    with pytest.raises(LookupError, match="no checkpoint has a validation metric 'f1'"):
        trained.register_best("x", metric="f1")
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        trained.register_best("")
    (x, y), (vx, vy) = data
    with Elistimator(tiny_model_fn, tmp_path / "untracked", verbose=False, tracking=False) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        train_epochs(est, 1)
        with pytest.raises(RuntimeError, match="registering a model needs tracking"):
            est.register_best("x")
