"""The Elistimator's options, checked once: what the constructor and ``from_disk`` take, and
the saver settings ``setup`` takes. Every check names the argument and what it expects."""

from __future__ import annotations

import inspect
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import InvalidTypeError, InvalidValueError
from .metadata import DEFAULT_MAX_TO_KEEP
from .tracking.base import Tracker

PathLike = str | os.PathLike
SESSION_ARGS = ("target", "config")
UNSUPPORTED_SAVER_ARGS = ("keep_checkpoint_every_n_hours", "saver_def", "builder", "defer_build")


@dataclass(frozen=True)
class Settings:
    """How an Elistimator runs and where it tracks (see ``Elistimator`` for each option)."""

    session_args: dict[str, Any] = field(default_factory=dict)
    verbose: bool = True
    summary_every_n_steps: int = 10
    tracking: bool | str | os.PathLike | Tracker = True
    experiment: str | None = None
    run_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    cache_dir: Path | None = None
    distribute: Any = None  # a tf.distribute strategy (checked by distribute.checked_strategy)
    system_metrics: bool = False

    @classmethod
    def checked(
        cls,
        session_args: Mapping[str, Any] | None = None,
        *,
        verbose: bool = True,
        summary_every_n_steps: int = 10,
        tracking: Any = True,
        experiment: str | None = None,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        cache_dir: PathLike | None = None,
        distribute: Any = None,
        system_metrics: bool = False,
    ) -> Settings:
        if (
            isinstance(summary_every_n_steps, bool)
            or not isinstance(summary_every_n_steps, int)
            or summary_every_n_steps < 1
        ):
            raise InvalidValueError(f"summary_every_n_steps must be a positive int, got {summary_every_n_steps!r}")
        for name, value in (("experiment", experiment), ("run_name", run_name)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise InvalidValueError(f"{name} must be a non-empty string or None, got {value!r}")
        if tags is not None and (
            not isinstance(tags, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())
        ):
            raise InvalidTypeError(f"tags must be a dict of str to str, got {tags!r}")
        if not (
            isinstance(tracking, (bool, Tracker))
            or (isinstance(tracking, (str, os.PathLike)) and str(tracking).strip())
        ):
            raise InvalidTypeError(
                f"tracking must be True, False, a tracking URI string or a Tracker object, got {tracking!r}"
            )
        if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
            raise InvalidTypeError(f"cache_dir must be a str or pathlib.Path, got {type(cache_dir).__name__}")
        if not isinstance(system_metrics, bool):
            raise InvalidTypeError(f"system_metrics must be True or False, got {system_metrics!r}")
        return cls(
            session_args=_checked_session_args(session_args),
            verbose=bool(verbose),
            summary_every_n_steps=summary_every_n_steps,
            tracking=tracking,
            experiment=experiment,
            run_name=run_name,
            tags=dict(tags or {}),
            cache_dir=Path(cache_dir).expanduser() if cache_dir is not None else None,
            distribute=distribute,
            system_metrics=system_metrics,
        )


def _checked_session_args(session_args: Mapping[str, Any] | None) -> dict[str, Any]:
    if session_args is None:
        return {}
    if not isinstance(session_args, Mapping):
        raise InvalidTypeError(
            f"session_args must be a dict of tf.Session arguments, got {type(session_args).__name__}"
        )
    unknown = sorted(set(session_args) - set(SESSION_ARGS))
    if unknown:
        raise InvalidTypeError(f"session_args has unknown key(s) {unknown}; tf.Session takes {list(SESSION_ARGS)}")
    return dict(session_args)


def checked_steps(steps: Any) -> int | None:
    """``train(steps)``: a positive int, or None (to the end of the epoch)."""
    if steps is None:
        return None
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
        raise InvalidTypeError(f"steps must be a positive int or None, got {type(steps).__name__}")
    if steps < 1:
        raise InvalidValueError(f"steps must be a positive int or None, got {steps}")
    return int(steps)


@dataclass(frozen=True)
class SaverSettings:
    """``max_to_keep`` (our pruning) and the other ``tf.train.Saver`` arguments."""

    max_to_keep: int | None = DEFAULT_MAX_TO_KEEP
    args: dict[str, Any] = field(default_factory=dict)

    def updated(self, train_saver_args: Mapping[str, Any] | None) -> SaverSettings:
        """These settings changed by ``setup(train_saver_args=...)``; unnamed ones carry over."""
        if train_saver_args is None:
            return self
        if not isinstance(train_saver_args, Mapping):
            raise InvalidTypeError(
                f"train_saver_args must be a dict of tf.train.Saver arguments, got {type(train_saver_args).__name__}"
            )
        args = dict(train_saver_args)
        max_to_keep = args.pop("max_to_keep", self.max_to_keep)
        if max_to_keep is not None and (
            isinstance(max_to_keep, bool) or not isinstance(max_to_keep, int) or max_to_keep < 1
        ):
            raise InvalidValueError(
                f"train_saver_args['max_to_keep'] must be a positive int or None (keep all), got {max_to_keep!r}"
            )
        unsupported = sorted(set(args) & set(UNSUPPORTED_SAVER_ARGS))
        unknown = sorted(set(args) - _saver_parameters())
        if unsupported or unknown:
            raise InvalidValueError(
                f"train_saver_args has unsupported key(s) {unsupported + unknown}; the Elistimator "
                "prunes checkpoints by max_to_keep and passes the other tf.train.Saver arguments on"
            )
        return replace(self, max_to_keep=max_to_keep, args=args)

    def as_params(self) -> dict[str, Any]:
        return {"max_to_keep": self.max_to_keep, **self.args}


def _saver_parameters() -> set:
    """The arguments ``tf.train.Saver`` takes (TensorFlow imported only when saver args are given)."""
    from ._tf import tf

    return set(inspect.signature(tf.train.Saver.__init__).parameters) - {"self"}
