"""A run's live validation history: what every reader of a run's metrics must see.

A run keeps every point ever logged. When training goes on from an older checkpoint, the
abandoned branch's validations are retracted by logging NaN at each of their steps
(``TrackingListener.on_branch``), and a step trained again logs new points at the same step.
So at each step only the latest point counts, and a NaN there means the step's value is gone.
The CLI's tables, ``elistimator best``, checkpoint selection from a run (the registry's too) and
the metrics linked to a checkpoint's logged model all read the history through this module, so
none of them counts a retracted value. (A sweep's objective reads the trial's own checkpoints in
``elistimator.json``, where a dropped branch's are gone.)
"""

from __future__ import annotations

import math
from typing import Any

from .names import validation_metrics


def latest_points(points: list[Any]) -> dict[int, Any]:
    """``{step: point}``: the latest point of each step. At one timestamp a NaN counts as the later:
    a store need not return the points of one millisecond in the order they were logged (SQLite's
    does not), and a retraction is always logged after the value it retracts, while a value that
    trains a retracted step again comes at least a training step after the retraction."""
    latest: dict[int, Any] = {}
    for point in points:
        seen = latest.get(point.step)
        if seen is None or _when(point) >= _when(seen):
            latest[point.step] = point
    return latest


def _when(point: Any) -> tuple[int, bool]:
    return point.timestamp, math.isnan(point.value)


def live_points(points: list[Any]) -> list[tuple[int, float]]:
    """``[(step, value)]`` by step: the latest point of each step (``latest_points``), without the
    steps whose latest point is NaN (retracted)."""
    return sorted((step, point.value) for step, point in latest_points(points).items() if not math.isnan(point.value))


def live_metric(client: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    """The live history of the run's metric ``key`` (e.g. ``validation/loss``)."""
    return live_points(client.get_metric_history(run_id, key))


def live_validations(client: Any, run: Any) -> dict[int, dict[str, float]]:
    """``{step: {metric: value}}`` of the run's validation metrics, retracted points left out."""
    found: dict[int, dict[str, float]] = {}
    for short, key in validation_metrics(run.data.metrics).items():
        for step, value in live_metric(client, run.info.run_id, key):
            found.setdefault(step, {})[short] = value
    return found
