"""The selection policy and the checkpoint index, value by value, without TensorFlow.

Expectations are worked out here from the recorded values (never read back from the
code under test), so a mutant of ``checkpoints.py`` that changes which step is chosen,
what is dropped or what is kept is caught in milliseconds (docs/testing.md, mutation
testing).
"""

import json
import math

import pytest

from elistimator_tracking.checkpoints import (
    CheckpointIndex,
    CheckpointRecord,
    best_step,
    checked_selection,
    latest_step,
    select_step,
)
from elistimator_tracking.criterion import checked_mode
from elistimator_tracking.errors import CheckpointNotFoundError

LOSSES = {10: 0.9, 20: 0.4, 30: 0.4, 40: 0.7}
ACCURACIES = {10: 0.5, 20: 0.8, 30: 0.75, 40: 0.8}


def index_of(losses=LOSSES, accuracies=ACCURACIES, local=lambda step: True) -> CheckpointIndex:
    records = [
        CheckpointRecord(step, f"checkpoints/model-{step}", {f"model-{step}.index": f"{step:064x}"}, local(step))
        for step in losses
    ]
    return CheckpointIndex(records, {step: {"loss": losses[step], "accuracy": accuracies[step]} for step in losses})


def expected_best(values, mode):
    """Best by value, ties to the later step: the best value first, then the latest step holding it."""
    best = min(values.values()) if mode == "min" else max(values.values())
    return max(step for step, value in values.items() if value == best)


@pytest.mark.parametrize(
    "metric, mode, values",
    [
        ("loss", "min", LOSSES),
        ("accuracy", "max", ACCURACIES),
        ("loss", "max", LOSSES),
        ("accuracy", "min", ACCURACIES),
    ],
)
def test_best_is_the_best_value_and_ties_go_to_the_later_step(metric, mode, values):
    index = index_of()
    assert best_step(index, metric, mode) == expected_best(values, mode)
    assert select_step(index, "best", metric, mode) == expected_best(values, mode)


def test_best_ignores_nan_and_checkpoints_without_the_metric():
    index = index_of({10: float("nan"), 20: 0.5, 30: 0.6}, {10: 0.9, 20: 0.1, 30: 0.2})
    index.add(CheckpointRecord(50, "checkpoints/model-50"))  # saved, never validated
    assert best_step(index, "loss", "min") == 20
    assert best_step(index, "loss", "max") == 30
    assert best_step(index, "accuracy", "max") == 10


def test_best_counts_only_checkpoints_not_validations_between_them():
    index = index_of({10: 0.5, 20: 0.6}, {10: 0.1, 20: 0.2})
    index.record_validation(15, {"loss": 0.01, "accuracy": 0.99})  # validated, never saved
    assert best_step(index, "loss", "min") == 10
    assert best_step(index, "accuracy", "max") == 20


def test_best_without_the_metric_names_the_metrics_there_are():
    with pytest.raises(CheckpointNotFoundError, match=r"'f1'.*\['accuracy', 'loss'\]"):
        best_step(index_of(), "f1", "max")
    with pytest.raises(CheckpointNotFoundError, match="validate"):
        best_step(CheckpointIndex([CheckpointRecord(5, "checkpoints/model-5")]), "loss", "min")


def test_latest_is_the_greatest_step_local_or_not():
    assert latest_step(index_of(local=lambda step: step < 40)) == 40
    assert select_step(index_of(), "latest") == 40
    with pytest.raises(CheckpointNotFoundError, match="save_ckpt"):
        latest_step(CheckpointIndex())


def test_a_step_is_selected_only_when_it_has_a_checkpoint():
    index = index_of()
    assert select_step(index, 20) == 20
    with pytest.raises(CheckpointNotFoundError, match=r"no checkpoint at step 25; checkpoints: \[10, 20, 30, 40\]"):
        select_step(index, 25)


@pytest.mark.parametrize("given, taken", [("latest", "latest"), ("best", "best"), (0, 0), (7, 7)])
def test_selections_taken(given, taken):
    assert checked_selection(given) == taken


@pytest.mark.parametrize("refused", [True, False, -1, 1.0, "7", "Latest", None, b"best"])
def test_selections_refused_with_what_is_expected(refused):
    with pytest.raises(ValueError, match="'latest', 'best' or a global step"):
        checked_selection(refused)


def test_modes():
    assert (checked_mode("min"), checked_mode("max"), checked_mode("auto")) == ("min", "max", "auto")
    for refused in ("MIN", "minimum", None):
        with pytest.raises(ValueError, match="mode must be 'min', 'max' or 'auto'"):
            checked_mode(refused)
    with pytest.raises(ValueError, match="mode must be"):
        best_step(index_of(), "loss", "lowest")


def test_drop_after_keeps_the_step_itself_and_everything_before():
    index = index_of()
    index.record_validation(25, {"loss": 0.1})
    index.record_validation(45, {"loss": 0.1})
    assert index.drop_after(20) == [30, 40]
    assert index.steps() == [10, 20]
    assert sorted(index.validations) == [10, 20]
    assert index.metrics(20) == {"loss": 0.4, "accuracy": 0.8}
    assert index.drop_after(20) == []


def test_local_only_steps_leave_out_pruned_checkpoints():
    index = index_of(local=lambda step: step in (30, 40))
    assert index.steps() == [10, 20, 30, 40]
    assert index.steps(local_only=True) == [30, 40]


def test_the_index_survives_json_exactly():
    index = index_of(local=lambda step: step != 20)
    index.record_validation(15, {"loss": float("nan")})
    text = json.dumps(index.to_json())
    again = CheckpointIndex.from_json(json.loads(text))
    assert json.dumps(again.to_json()) == text
    assert {s: (r.prefix, r.files, r.local) for s, r in again.records.items()} == {
        s: (f"checkpoints/model-{s}", {f"model-{s}.index": f"{s:064x}"}, s != 20) for s in LOSSES
    }
    assert again.metrics(30) == {"loss": 0.4, "accuracy": 0.75} and math.isnan(again.metrics(15)["loss"])
    assert CheckpointRecord.from_json(3, {"prefix": "checkpoints/model-3"}).local is True


def test_a_commit_clause_is_held_only_by_exactly_what_it_names():
    index = index_of()
    files = {"model-20.index": f"{20:064x}"}
    assert index.holds({"kind": "checkpoint", "step": 20, "files": files})
    assert not index.holds({"kind": "checkpoint", "step": 20, "files": {"model-20.index": "0" * 64}})
    assert not index.holds({"kind": "checkpoint", "step": 25, "files": files})
    assert index.holds({"kind": "validation", "step": 30, "metrics": {"accuracy": 0.75, "loss": 0.4}})
    assert not index.holds({"kind": "validation", "step": 30, "metrics": {"accuracy": 0.75, "loss": 0.5}})
    assert not index.holds({"kind": "validation", "step": 35, "metrics": {}})
    index.record_validation(50, {"loss": float("nan")})
    assert index.holds({"kind": "validation", "step": 50, "metrics": {"loss": float("nan")}})
    dropped = {"40": {"loss": 0.7, "accuracy": 0.8}}
    assert not index.holds({"kind": "branch", "step": 30, "dropped": dropped})
    index.drop_after(30)
    assert index.holds({"kind": "branch", "step": 30, "dropped": dropped})
    with pytest.raises(ValueError, match="unknown commit clause"):
        index.holds({"kind": "other", "step": 1})


def test_best_by_default_is_the_lowest_loss():
    index = index_of()
    assert best_step(index) == select_step(index, "best") == expected_best(LOSSES, "min")


def test_an_index_written_without_checkpoints_or_validations_reads_as_empty():
    assert CheckpointIndex.from_json({}).to_json() == {"checkpoints": {}, "validations": {}}
    assert CheckpointIndex.from_json({"validations": {"5": {"loss": 1.0}}}).metrics(5) == {"loss": 1.0}
