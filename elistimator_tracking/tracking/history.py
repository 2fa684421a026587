"""A run's live validation history: what every reader of a run's metrics must see.

A run keeps every point ever logged. When training goes on from an older checkpoint, the
abandoned branch's validations are retracted by logging NaN at each of their steps
(``TrackingListener.on_branch``), and a step trained again logs new points at the same step.
So at each step only the latest point counts, and a NaN there means the step's value is gone.
The CLI's tables, ``elistimator best``, checkpoint selection from a run, the registry and a
sweep's objective all read the history through this module, so none of them counts a
retracted value.
"""

from __future__ import annotations

import math
from typing import Any

from .names import validation_metrics


def live_points(points: list[Any]) -> list[tuple[int, float]]:
    """``[(step, value)]`` by step: the latest point (by timestamp, then logging order) of each step,
    without the steps whose latest point is NaN (retracted)."""
    latest: dict[int, tuple[int, int, float]] = {}
    for order, point in enumerate(points):
        seen = latest.get(point.step)
        if seen is None or (point.timestamp, order) >= seen[:2]:
            latest[point.step] = (point.timestamp, order, point.value)
    return sorted((step, value) for step, (_, _, value) in latest.items() if not math.isnan(value))


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
