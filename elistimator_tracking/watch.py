"""What watches every step of a loop (the estimator front end's ``SessionRunHook``s) and how a loop
runs one step with what it adds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ._tf import tf


class StepWatch(Protocol):
    """Something that watches every step of a loop (the estimator front end's ``SessionRunHook``s):
    it adds fetches and feeds to each step, sees their values, and may end the loop."""

    def before_step(self) -> tuple[Any, Mapping[tf.Tensor, Any]]:
        """The extra fetches and feeds of the next step (empty ones add nothing to the step)."""

    def after_step(self, values: Any) -> bool:
        """The extra fetches' values after the step; True ends the loop."""


class WatchedStep:
    """One step's fetches and feeds with what a watch adds (nothing when it asks for nothing), and the
    step's values split back into the loop's own and the watch's verdict."""

    def __init__(self, fetches: Any, feed: Mapping[tf.Tensor, Any], watch: StepWatch | None):
        self.watch = watch
        extra, extra_feed = watch.before_step() if watch is not None else (None, {})
        self.paired = bool(extra or extra_feed)
        self.fetches: Any = (fetches, extra) if self.paired else fetches
        self.feed: Mapping[tf.Tensor, Any] = {**feed, **extra_feed} if self.paired else feed

    def own(self, values: Any) -> Any:
        """The loop's own part of the step's values."""
        return values[0] if self.paired else values

    def finished(self, values: Any) -> bool:
        """Tell the watch the step's values; whether it ends the loop."""
        return self.watch is not None and bool(self.watch.after_step(values[1] if self.paired else {}))
