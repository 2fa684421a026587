"""Which value is better (``criterion.py``), the one policy every selection shares, and the store's
retention policy (``KeepBest``), value by value, without TensorFlow. Expectations are worked out
here by hand from the values, never read back from the code under test."""

import math

import pytest

from elistimator_tracking import Criterion, KeepBest
from elistimator_tracking.checkpoints import CheckpointIndex, CheckpointRecord, best_step
from elistimator_tracking.criterion import direction


@pytest.mark.parametrize(
    "metric, expected",
    [
        ("loss", "min"),
        ("accuracy", "max"),
        ("val_acc", "max"),
        ("top_5_accuracy", "max"),
        ("categorical_acc", "max"),
        ("fmeasure", "max"),
        ("mean_absolute_error", "min"),
        ("auc", "max"),  # Keras 3 knows AUC grows (Keras 2 took it for a loss)
        ("val_precision", "max"),
        ("mean_squared_error", "min"),
        ("validation/accuracy", "max"),
        ("perplexity", "min"),
    ],
)
def test_auto_is_keras_rule_max_for_accuracy_like_names_min_otherwise(metric, expected):
    assert direction(metric, "auto") == expected
    assert Criterion(metric).direction == expected
    assert Criterion(metric, "min").direction == "min" and Criterion(metric, "max").direction == "max"


def test_an_improvement_is_by_more_than_min_delta_and_nan_never_improves():
    lower = Criterion("loss", "min", min_delta=0.1)
    assert lower.improves(0.79, 0.9) and not lower.improves(0.8, 0.9) and not lower.improves(0.85, 0.9)
    higher = Criterion("accuracy", min_delta=0.05)
    assert higher.improves(0.86, 0.8) and not higher.improves(0.85, 0.8) and not higher.improves(0.7, 0.8)
    assert lower.improves(5.0, None) and lower.improves(5.0, math.nan)
    assert not lower.improves(math.nan, 1.0) and not lower.improves(None, 1.0)
    assert not Criterion("loss").improves(0.5, 0.5)  # a tie is no improvement


def test_best_skips_missing_and_nan_and_gives_ties_to_the_later_key():
    values = {10: 0.4, 20: math.nan, 30: 0.4, 40: None, 50: 0.7}
    assert Criterion("loss").best(values) == 30
    assert Criterion("loss", "max").best(values) == 50
    assert Criterion("loss").best({1: None, 2: math.nan}) is None


@pytest.mark.parametrize(
    "bad, error",
    [
        ({"mode": "lowest"}, ValueError),
        ({"metric": ""}, ValueError),
        ({"min_delta": -0.1}, ValueError),
        ({"min_delta": "0.1"}, TypeError),
        ({"min_delta": True}, TypeError),
    ],
)
def test_a_bad_criterion_is_refused_naming_what_is_expected(bad, error):
    with pytest.raises(error, match="mode must be 'min', 'max' or 'auto'|metric must|min_delta must"):
        Criterion(**bad)


def index_of(losses, local=lambda step: True):
    records = [CheckpointRecord(step, f"checkpoints/model-{step}", {"f": str(step)}, local(step)) for step in losses]
    return CheckpointIndex(records, {step: {"loss": value} for step, value in losses.items() if value is not None})


def test_checkpoint_selection_uses_auto_for_an_accuracy_metric():
    index = CheckpointIndex(
        [CheckpointRecord(s, f"checkpoints/model-{s}") for s in (1, 2, 3)],
        {1: {"accuracy": 0.5}, 2: {"accuracy": 0.9}, 3: {"accuracy": 0.7}},
    )
    assert best_step(index, "accuracy") == 2  # was min by default before auto: step 1


@pytest.mark.parametrize(
    "losses, k, kept",
    [
        ({10: 0.9, 20: 0.4, 30: 0.6, 40: 0.8}, 2, {20, 30, 40}),  # the best 2, and the latest
        ({10: 0.9, 20: 0.4, 30: 0.6, 40: 0.1}, 2, {20, 40}),  # the latest is among the best
        ({10: 0.9, 20: None, 30: 0.6, 40: None}, 1, {30, 40}),  # without the metric: never among the best
        ({10: None, 20: None}, 3, {20}),
        ({}, 2, set()),
    ],
)
def test_keep_best_keeps_the_k_best_by_the_metric_and_the_latest(losses, k, kept):
    assert KeepBest(k, "loss", "min").kept(index_of(losses)) == kept


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "2"])
def test_keep_best_needs_a_positive_int(k):
    with pytest.raises(ValueError, match="KeepBest\\(k\\) must be a positive int"):
        KeepBest(k)
