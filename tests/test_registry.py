"""register_best: a checkpoint becomes a Model Registry version that is also an MLflow Model."""

from __future__ import annotations

import warnings

import mlflow
import numpy as np
import pytest
from conftest import dataset_fn, fit_targets, target_model_fn, tiny_model_fn, train_epochs
from mlflow import MlflowClient

from elistimator_tracking import Elistimator
from elistimator_tracking.criterion import Criterion
from elistimator_tracking.tracking import AliasKeptWarning


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
    # the version's source is the checkpoint's logged model, which names the run and the step
    model = client.get_logged_model(registered.tags["elistimator.model_id"])
    assert registered.source == model.artifact_location and model.source_run_id == trained.run_id
    assert model.tags["elistimator.step"] == str(best)


def register_course(tmp_path, name, course, **register):
    """A run of ``target_model_fn`` over ``course`` (validation loss = target^2), its best checkpoint
    registered as ``name``; returns the version and the AliasKeptWarnings given."""
    with Elistimator(
        target_model_fn, tmp_path / f"run-{len(list(tmp_path.iterdir()))}", verbose=False, experiment="alias-rule"
    ) as est:
        fit_targets(est, course)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            version = est.register_best(name, **register)
    return version, [str(w.message) for w in caught if issubclass(w.category, AliasKeptWarning)]


def champion(name):
    return str(MlflowClient().get_model_version_by_alias(name, "champion").version)


def test_the_champion_moves_only_to_a_better_version_unless_forced(tmp_path, request):
    name = request.node.name[:60]
    assert register_course(tmp_path, name, [1.0, 0.5]) == ("1", [])  # best loss 0.25
    assert champion(name) == "1"
    version, said = register_course(tmp_path, name, [2.0, 1.0])  # worse: best loss 1.0
    assert version == "2" and champion(name) == "1"
    assert said == [
        f"@champion stays on version 1 of {name!r}: its validation/loss 0.25 is at least as good as "
        "version 2's 1 (min; a tie keeps the current one); force=True moves it anyway"
    ]
    version, said = register_course(tmp_path, name, [0.5])  # a tie keeps the current one
    assert version == "3" and champion(name) == "1" and len(said) == 1
    assert register_course(tmp_path, name, [2.0], force=True) == ("4", []) and champion(name) == "4"
    assert register_course(tmp_path, name, [0.25]) == ("5", []) and champion(name) == "5"  # better
    assert register_course(tmp_path, name, [0.5], mode="max") == ("6", []) and champion(name) == "6"


def test_a_version_without_the_metric_never_takes_the_alias(tmp_path, request):
    from elistimator_tracking.tracking.registry import alias_kept

    name = request.node.name[:60]
    register_course(tmp_path, name, [1.0])
    note = alias_kept(
        MlflowClient(), name, "champion", "2", {"validation/accuracy": "0.9"}, Criterion("loss", "min"), False
    )
    assert note == (f"version 2 of {name!r} recorded no validation/loss: @champion is left where it is")
    assert alias_kept(MlflowClient(), name, "champion", "2", {}, Criterion("loss", "min"), True) is None


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


def test_a_best_checkpoint_pruned_locally_registers_a_version_that_loads_anywhere(tmp_path, data, request):
    """max_to_keep=1 and the best is the first of four checkpoints: its files come from the run."""
    import os
    import subprocess
    import sys

    (x, y), (vx, vy) = data
    name = request.node.name
    with Elistimator(tiny_model_fn, tmp_path / "model", params={"learning_rate": 0.05}, verbose=False) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy), train_saver_args={"max_to_keep": 1})
        for _ in range(4):
            est.train().validate()
            est.save_ckpt()
        losses = {step: c["metrics"]["loss"] for step, c in est.checkpoints.items()}
        worst = max(losses, key=lambda s: (losses[s], s))  # 'best' by mode='max' on the loss
        assert not est.checkpoints[worst]["local"]
        est.restore_ckpt(est.checkpoints[worst]["file"])
        expected = est.predict(x=vx)["probabilities"]
        est.register_best(name, metric="loss", mode="max")
    np.save(tmp_path / "vx.npy", vx)
    script = f"""
import mlflow, numpy as np
from elistimator_tracking import Elistimator
vx = np.load({str(tmp_path / "vx.npy")!r})
est = Elistimator.from_disk("models:/{name}@champion", verbose=False, tracking=False)
print(est.global_step)
np.save({str(tmp_path / "restored.npy")!r}, est.predict(x=vx)["probabilities"])
pyfunc = mlflow.pyfunc.load_model("models:/{name}@champion")
np.save({str(tmp_path / "pyfunc.npy")!r}, pyfunc.predict({{"x": vx}})["probabilities"])
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=os.environ, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) == worst
    for answer in ("restored.npy", "pyfunc.npy"):
        np.testing.assert_allclose(np.load(tmp_path / answer), expected, rtol=1e-6)
