"""Values, not just steps: what reaches MLflow and what "best" selects, against what validate()
and evaluate() returned.

The run trains ``target_model_fn`` on a designed course of targets, so the validation values go
down, up, down again and are all different: the best checkpoint is neither the first nor the
last, and no tie-break is involved. Every expectation is computed here from the values the
Elistimator returned, never read back from MLflow.
"""

from __future__ import annotations

from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
from conftest import best_of, fit_targets, history, target_model_fn, targets, zero_targets
from mlflow import MlflowClient

from elistimator_tracking import Elistimator
from elistimator_tracking.tracking.registry import register_best

COURSE = (1.5, -0.5, 3.0, -2.0, 1.0)  # validation loss w^2: 2.25, 0.25, 9, 4, 1 at steps 3, 6, 9, 12, 15
PROBE = {"t": np.zeros(1, np.float32)}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """One tracked run over COURSE (checkpoints 3..15, the newest 2 kept locally), then an evaluate()."""
    model_dir = tmp_path_factory.mktemp("values") / "model"
    with Elistimator(target_model_fn, model_dir, verbose=False, summary_every_n_steps=1) as est:
        est.setup(targets(COURSE[0]), zero_targets, train_saver_args={"max_to_keep": 2})
        returned = fit_targets(est, COURSE)
        evaluated = est.evaluate(targets(0.25))
        run_id, step = est.run_id, est.global_step
    best = best_of(returned)
    assert best not in (min(returned), max(returned)) and best_of(returned, mode="max") != max(returned)
    return SimpleNamespace(
        model_dir=model_dir,
        returned=returned,
        evaluated=evaluated,
        evaluated_at=step,
        run_id=run_id,
        best=best,
        cache=tmp_path_factory.mktemp("cache"),
    )


def test_validation_and_evaluation_metrics_in_the_run_are_the_returned_values(course):
    client = MlflowClient()
    for name in ("loss", "w"):
        assert history(client, course.run_id, f"validation/{name}") == [
            (step, metrics[name]) for step, metrics in course.returned.items()
        ]
        assert history(client, course.run_id, f"evaluation/{name}") == [(course.evaluated_at, course.evaluated[name])]


def test_training_loss_in_the_run_is_the_loss_of_each_step(course):
    """Each epoch's first step moves w from the previous target to the next: loss (previous - next)^2; then 0."""
    expected, previous = [], 0.0
    for target in COURSE:
        expected += [(previous - target) ** 2, 0.0, 0.0]
        previous = target
    logged = history(MlflowClient(), course.run_id, "train/loss")
    assert [s for s, _ in logged] == list(range(1, 16))
    np.testing.assert_allclose([v for _, v in logged], expected, rtol=1e-6)


def test_checkpoints_carry_the_returned_metrics_and_the_tags_name_the_best(course):
    with Elistimator.from_disk(course.model_dir, verbose=False, tracking=False) as est:
        assert {s: c["metrics"] for s, c in est.checkpoints.items()} == course.returned
    tags = MlflowClient().get_run(course.run_id).data.tags
    assert tags["elistimator.best_step"] == str(course.best)
    assert tags["elistimator.latest_step"] == str(max(course.returned))


@pytest.mark.parametrize("metric, mode", [("loss", "min"), ("loss", "max"), ("w", "max"), ("w", "min")])
def test_best_from_the_model_directory_and_from_the_run(course, metric, mode):
    """Local (pruned checkpoints fetched from the run) and runs:/ agree with the returned values."""
    expected = best_of(course.returned, metric, mode)
    w = course.returned[expected]["w"]
    for source in (course.model_dir, f"runs:/{course.run_id}"):
        with Elistimator.from_disk(
            source, checkpoint="best", metric=metric, mode=mode, cache_dir=course.cache, verbose=False, tracking=False
        ) as est:
            assert est.global_step == expected, source
            assert est.predict(**PROBE)["w"][0] == pytest.approx(w)
    with Elistimator.from_disk(course.model_dir, verbose=False, tracking=False, cache_dir=course.cache) as est:
        assert est.restore_best_ckpt(metric, mode).global_step == expected
        assert est.predict(**PROBE)["w"][0] == pytest.approx(w)


def test_register_best_registers_the_best_checkpoint_with_its_values(course, request):
    name = request.node.name
    with Elistimator.from_disk(course.model_dir, verbose=False, cache_dir=course.cache) as est:
        version = est.register_best(name)
    assert register_best(course.run_id, name, metric="w", mode="max", alias="highest", cache_dir=course.cache) == (
        "2",
        None,
    )  # the version, and no note: the alias moved
    client = MlflowClient()
    for alias, (metric, mode) in (("champion", ("loss", "min")), ("highest", ("w", "max"))):
        expected = best_of(course.returned, metric, mode)
        registered = client.get_model_version_by_alias(name, alias)
        assert registered.tags["elistimator.step"] == str(expected)
        assert registered.tags["elistimator.selected_by"] == f"validation/{metric} ({mode})"
        assert {k: float(v) for k, v in registered.tags.items() if k.startswith("validation/")} == {
            f"validation/{k}": v for k, v in course.returned[expected].items()
        }
    assert version == "1"


def test_a_version_registered_from_a_pruned_checkpoint_loads(course, request):
    name = request.node.name
    with Elistimator.from_disk(course.model_dir, verbose=False, cache_dir=course.cache) as est:
        est.register_best(name)  # the best (step 6) was pruned locally
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert model.predict(PROBE)["w"][0] == pytest.approx(course.returned[course.best]["w"])


def test_each_validation_dict_travels_in_one_log_batch(tmp_path, monkeypatch):
    """README: metric points go in batches, one log_batch per validation dict or fewer."""
    calls = []
    original = MlflowClient.log_batch

    def counting(self, run_id, metrics=(), *args, **kwargs):  # not the link of logged points to a logged model
        calls.append([(m.key, m.step) for m in metrics if m.model_id is None])
        return original(self, run_id, metrics, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", counting)
    with Elistimator(target_model_fn, tmp_path / "model", verbose=False) as est:
        est.setup(targets(1.0), zero_targets)
        returned = fit_targets(est, (1.0, 2.0, 3.0))
    for step, metrics in returned.items():
        keys = {(f"validation/{k}", step) for k in metrics}
        holding = [call for call in calls if keys & set(call)]
        assert len(holding) == 1 and keys <= set(holding[0]), (step, calls)
