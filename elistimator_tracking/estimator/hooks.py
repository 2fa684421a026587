"""``tf.compat.v1.train.SessionRunHook``s around the Elistimator's loops (its ``StepWatch``).

A ``HookRunner`` gives each hook the moments ``MonitoredSession`` gave it: ``begin`` (the
graph may still grow), ``after_create_session``, ``before_run`` / ``after_run`` around every
step with the fetches and feeds it asked for, and ``end``. ``TrainingRunner`` adds what
tf.estimator's own training hooks did: stop at ``steps`` / ``max_steps``, save checkpoints
every ``save_checkpoints_steps`` or ``save_checkpoints_secs`` (telling ``saving_listeners``),
and log the loss every ``log_step_count_steps``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._tf import tf
from ..errors import InvalidTypeError, UsageError

log = logging.getLogger("elistimator_tracking.estimator")


def checked_hooks(hooks: Any, what: str) -> tuple[Any, ...]:
    hooks = tuple(hooks or ())
    for hook in hooks:
        if not isinstance(hook, tf.train.SessionRunHook):
            raise InvalidTypeError(
                f"{what} must hold tf.compat.v1.train.SessionRunHook objects, got {type(hook).__name__}"
            )
    return hooks


class HookRunner:
    """Runs ``hooks`` around the steps of one loop over ``session``."""

    def __init__(self, hooks: Sequence[Any], session: tf.Session, steps: int | None = None):
        """``steps``: stop after this many (evaluate's ``steps``), as tf.estimator's own evaluation hook did."""
        self.hooks, self.session, self._steps = list(hooks), session, steps
        self._context: tf.train.SessionRunContext | None = None
        self.done = 0

    def begin(self) -> HookRunner:
        with self.session.graph.as_default():
            for hook in self.hooks:
                hook.begin()
        coordinator = tf.train.Coordinator()
        for hook in self.hooks:
            hook.after_create_session(self.session, coordinator)
        return self

    def before_step(self) -> tuple[dict[Any, Any], dict[Any, Any]]:
        """The hooks' fetches by position (and feeds) for the next step."""
        self._context = tf.train.SessionRunContext(tf.train.SessionRunArgs(None), self.session)
        fetches: dict[Any, Any] = {}
        feed: dict[Any, Any] = {}
        for position, hook in enumerate(self.hooks):
            request = hook.before_run(self._context)
            if request is None:
                continue
            if request.fetches is not None:
                fetches[position] = request.fetches
            for tensor, value in (request.feed_dict or {}).items():
                if tensor in feed:
                    raise UsageError(f"two SessionRunHooks feed the same tensor {tensor}")
                feed[tensor] = value
        return fetches, feed

    def after_step(self, values: Mapping[Any, Any]) -> bool:
        for position, hook in enumerate(self.hooks):
            hook.after_run(self._context, tf.train.SessionRunValues(values.get(position), None, None))
        self.done += 1
        stopped = self._context is not None and self._context.stop_requested
        return stopped or (self._steps is not None and self.done >= self._steps)

    def end(self) -> None:
        for hook in self.hooks:
            hook.end(self.session)


class TrainingRunner(HookRunner):
    """The hooks of a ``train()`` call, and tf.estimator's own: the last step, checkpoints (when training
    starts, every ``save_checkpoints_steps``/``_secs``, at the end), ``loss`` every ``save_summary_steps`` and
    ``global_step/sec`` every ``log_step_count_steps`` (to ``top``, the events at the top of ``model_dir``)."""

    def __init__(
        self,
        hooks: Sequence[Any],
        session: tf.Session,
        loss: tf.Tensor,
        step: int,
        last_step: int | None,
        config: Any,
        save: Callable[[int], bool],
        top: Any,
    ):
        super().__init__(hooks, session)
        self.step, self.last_step, self.config, self._save, self._top = step, last_step, config, save, top
        self.saved_step: int | None = None
        self._saved_at = time.monotonic()
        self._loss = loss
        self._counted = (time.monotonic(), step)

    def begin(self) -> TrainingRunner:
        """The hooks' ``begin`` and ``after_create_session``, then the checkpoint tf.estimator saved when its
        session was created (its saving listeners hear of it)."""
        super().begin()
        self.save()
        return self

    def before_step(self) -> tuple[dict[Any, Any], dict[Any, Any]]:
        fetches, feed = super().before_step()
        if self._due(self.config.save_summary_steps) or self._due(self.config.log_step_count_steps):
            fetches["loss"] = self._loss
        return fetches, feed

    def _due(self, every: int | None) -> bool:
        return every is not None and every > 0 and (self.step + 1) % every == 0

    def after_step(self, values: Mapping[Any, Any]) -> bool:
        stop = super().after_step(values)
        self.step += 1
        if "loss" in values:
            self._record(float(values["loss"]))
        if self._checkpoint_due():
            stop = self.save() or stop
        return stop or (self.last_step is not None and self.step >= self.last_step)

    def _record(self, loss: float) -> None:
        every = self.config.log_step_count_steps
        if self.config.save_summary_steps and self.step % self.config.save_summary_steps == 0:
            self._top.scalars({"loss": loss}, self.step)
        if every and self.step % every == 0:
            now, (then, step) = time.monotonic(), self._counted
            rate = (self.step - step) / (now - then) if now > then else float("nan")
            self._counted = (now, self.step)
            self._top.scalars({"global_step/sec": rate}, self.step)
            log.info("loss = %s, step = %d (%.3f sec)", loss, self.step, (now - then))

    def _checkpoint_due(self) -> bool:
        config = self.config
        if config.save_checkpoints_steps is not None:
            return self.saved_step is None or self.step - self.saved_step >= config.save_checkpoints_steps
        return (
            config.save_checkpoints_secs is not None
            and time.monotonic() - self._saved_at >= config.save_checkpoints_secs
        )

    def save(self) -> bool:
        """Save a checkpoint at the current step (unless saved there, or ``RunConfig`` saves none, as
        ``save_checkpoints_steps=None, save_checkpoints_secs=None`` said to tf.estimator); True: a listener
        asked to stop."""
        if self.saved_step == self.step or not (
            self.config.save_checkpoints_steps or self.config.save_checkpoints_secs
        ):
            return False
        self.saved_step, self._saved_at = self.step, time.monotonic()
        return self._save(self.step)
