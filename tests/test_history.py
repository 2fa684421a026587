"""A run's live validation history (``tracking/history.py``) on a real SQLite store: the latest point
of each step counts, a NaN retracts, and linking a checkpoint's metrics reads the same rule."""

from __future__ import annotations

import math

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from elistimator_tracking.tracking.history import latest_points, live_metric
from elistimator_tracking.tracking.logged_models import link_step_metrics

T = 1_700_000_000_000  # a millisecond timestamp
KEY = "validation/loss"


@pytest.fixture
def run(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'store.db'}")
    experiment = client.create_experiment("history")
    return client, experiment, client.create_run(experiment).info.run_id


def log(client, run_id, *points):
    for value, timestamp, step in points:  # one call each: the order they were logged
        client.log_batch(run_id, metrics=[Metric(KEY, value, timestamp, step)])


def linked(client, experiment, run_id, step):
    model = client.create_logged_model(experiment, source_run_id=run_id)
    link_step_metrics(client, client.get_run(run_id), model.model_id, step)
    return [(m.key, m.value, m.timestamp) for m in client.get_logged_model(model.model_id).metrics or []]


def test_a_retraction_in_the_same_millisecond_as_its_value_retracts_it(run):
    """SQLite returns one millisecond's points in its own order (the NaN first here), not the order
    they were logged: the retraction must still win over the value it retracts."""
    client, experiment, run_id = run
    log(client, run_id, (0.5, T, 10), (math.nan, T, 10), (0.7, T, 20))
    assert live_metric(client, run_id, KEY) == [(20, 0.7)]
    assert linked(client, experiment, run_id, 10) == []
    assert linked(client, experiment, run_id, 20) == [(KEY, 0.7, T)]


def test_a_step_trained_again_after_its_retraction_counts_its_new_value_everywhere(run):
    client, experiment, run_id = run
    log(client, run_id, (0.5, T, 10), (math.nan, T + 5, 10), (0.4, T + 9, 10))
    assert live_metric(client, run_id, KEY) == [(10, 0.4)]
    assert linked(client, experiment, run_id, 10) == [(KEY, 0.4, T + 9)]


def test_the_latest_point_does_not_depend_on_the_order_a_store_returns_them():
    points = [Metric(KEY, 0.5, T, 10), Metric(KEY, math.nan, T, 10), Metric(KEY, 0.3, T - 1, 10)]
    for ordering in (points, points[::-1], points[1:] + points[:1]):
        assert math.isnan(latest_points(ordering)[10].value)
