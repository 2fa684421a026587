"""Which value is better: the one policy that checkpoint selection, the store's retention, the
``elistimator`` command, the registry's alias rule, early stopping and sweeps all share.

A ``Criterion`` names a validation metric, a mode and a ``min_delta``. ``mode='auto'`` means what
Keras means: higher is better for accuracy-like names, lower for everything else (losses,
errors). Accuracy-like is Keras 2's rule (``acc`` anywhere in the name, ``fmeasure``) and the
metrics Keras 3 knows to grow (a word of the name among ``MAXIMIZED``: ``auc``, ``precision``,
``recall``, ``f1``, ``iou``, ...). A value improves on another only by more than ``min_delta``;
NaN never wins; among equal values the later step wins a selection.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import InvalidTypeError, InvalidValueError

MODES = ("min", "max", "auto")
#: words of a metric name that say higher is better (besides ``acc`` anywhere in it)
MAXIMIZED = frozenset({"auc", "precision", "recall", "f1", "fmeasure", "fscore", "iou", "miou", "r2", "psnr", "ssim"})
Key = TypeVar("Key", bound=Hashable)


def direction(metric: str, mode: str = "auto") -> str:
    """``'min'`` or ``'max'`` for ``metric`` in ``mode`` (``auto``: Keras' rule)."""
    if mode != "auto":
        return mode
    name = metric.rsplit("/", 1)[-1].lower()
    words = set(re.split(r"[^a-z0-9]+", name))
    return "max" if "acc" in name or words & MAXIMIZED else "min"


@dataclass(frozen=True)
class Criterion:
    """Which value is better: by validation ``metric`` in ``mode``, by more than ``min_delta``.

    Args:
        metric: the metric's name (``'loss'``, ``'accuracy'``, ``'validation/auc'``).
        mode: ``'min'``, ``'max'``, or ``'auto'``: max for accuracy-like names (``acc`` anywhere,
            or a word among ``MAXIMIZED``), min otherwise.
        min_delta: how much better a value must be to count as an improvement (>= 0).

    Raises:
        InvalidValueError: an empty metric, an unknown mode, a negative ``min_delta``.
        InvalidTypeError: ``min_delta`` is not a number.
    """

    metric: str = "loss"
    mode: str = "auto"
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric.strip():
            raise InvalidValueError(f"metric must be a non-empty metric name, got {self.metric!r}")
        if self.mode not in MODES:
            raise InvalidValueError(f"mode must be 'min', 'max' or 'auto', got {self.mode!r}")
        if isinstance(self.min_delta, bool) or not isinstance(self.min_delta, numbers.Real):
            raise InvalidTypeError(f"min_delta must be a number >= 0, got {self.min_delta!r}")
        if not self.min_delta >= 0:
            raise InvalidValueError(f"min_delta must be a number >= 0, got {self.min_delta!r}")

    @property
    def direction(self) -> str:
        """``'min'`` or ``'max'``: ``mode`` with ``auto`` resolved for ``metric``."""
        return direction(self.metric, self.mode)

    def improves(self, value: float | None, reference: float | None) -> bool:
        """Whether ``value`` is better than ``reference`` by more than ``min_delta`` (any real value
        improves on no reference; NaN and None never improve)."""
        if value is None or math.isnan(value):
            return False
        if reference is None or math.isnan(reference):
            return True
        if self.direction == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    def best(self, values: Mapping[Key, float | None]) -> Key | None:
        """The key of the best value (ties go to the greatest key: the later step); None when no
        value is a real number."""
        sign = 1 if self.direction == "min" else -1
        candidates = {k: v for k, v in values.items() if v is not None and not math.isnan(v)}
        if not candidates:
            return None
        return min(candidates, key=lambda k: (sign * candidates[k], _descending(k)))

    def describe(self) -> str:
        """``loss (min)``, as tags and messages show the criterion."""
        delta = f", min_delta {self.min_delta:g}" if self.min_delta else ""
        return f"{self.metric} ({self.direction}{delta})"


def _descending(key: Any) -> Any:
    return -key if isinstance(key, numbers.Real) else key


def checked_mode(mode: Any) -> str:
    if mode not in MODES:
        raise InvalidValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
    return mode
