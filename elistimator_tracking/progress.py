"""Progress bars and the one-line metrics summary printed after validation."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from tqdm import tqdm

BAR_COLUMNS = 80


def progress_bar(description: str, total: int | None, enabled: bool) -> tqdm:
    """A tqdm bar; without a known ``total`` it counts steps and shows no ETA."""
    return tqdm(total=total, desc=description, ncols=BAR_COLUMNS, disable=not enabled, file=sys.stderr, leave=True)


def metrics_line(metrics: Mapping[str, float]) -> str:
    """``accuracy=0.9682 loss=0.0999``: the metrics in their order, loss last."""
    ordered = [k for k in metrics if k != "loss"] + (["loss"] if "loss" in metrics else [])
    return " ".join(f"{key}={metrics[key]:.4f}" for key in ordered)
