"""The Elistimator's options, each declared once: its default, its check and what it means.

``Elistimator(...)`` and ``Elistimator.from_disk(...)`` spell their keyword options out (for IDEs
and readers) and hand them here (``Settings.checked``); ``tests/test_settings.py`` holds both
signatures against these declarations, default by default. Every check names the option and
what it expects. The saver settings ``setup`` takes are ``SaverSettings``.
"""

from __future__ import annotations

import inspect
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import InvalidTypeError, InvalidValueError, MissingDependencyError
from .metadata import DEFAULT_MAX_TO_KEEP
from .tracking.base import Tracker

PathLike = str | os.PathLike
SESSION_ARGS = ("target", "config")
UNSUPPORTED_SAVER_ARGS = ("keep_checkpoint_every_n_hours", "saver_def", "builder", "defer_build")


def option(default: Any, check: Callable[[str, Any], Any], doc: str) -> Any:
    """A field of ``Settings``: ``default`` (a callable for a mutable one), ``check(name, value)``
    returning the value as kept, and ``doc``."""
    spec: dict[str, Any] = {"default_factory": default} if callable(default) else {"default": default}
    return field(metadata={"check": check, "doc": doc}, **spec)


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidTypeError(f"{name} must be True or False, got {value!r}")
    return value


def _system_metrics(name: str, value: Any) -> bool:
    """On: MLflow's CPU and memory monitor needs ``psutil`` (the ``system-metrics`` extra)."""
    if _boolean(name, value):
        try:
            import psutil  # noqa: F401
        except ImportError:
            raise MissingDependencyError(
                f"{name}=True needs psutil (MLflow's CPU and memory monitor), which is not installed: "
                "pip install 'elistimator_tracking[system-metrics]'"
            ) from None
    return value


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _name(name: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise InvalidValueError(f"{name} must be a non-empty string or None, got {value!r}")
    return value


def _tags(name: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidTypeError(f"{name} must be a dict of str to str, got {value!r}")
    return dict(value)


def _tracking(name: str, value: Any) -> Any:
    if isinstance(value, (bool, Tracker)) or (isinstance(value, (str, os.PathLike)) and str(value).strip()):
        return value
    raise InvalidTypeError(f"{name} must be True, False, a tracking URI string or a Tracker object, got {value!r}")


def _path(name: str, value: Any) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidTypeError(f"{name} must be a str or pathlib.Path, got {type(value).__name__}")
    return Path(value).expanduser()


def _strategy(name: str, value: Any) -> Any:
    if value is None:
        return None
    from .distribute import checked_strategy  # imports TensorFlow: only when a strategy is given

    return checked_strategy(value)


def _listeners(name: str, value: Any) -> tuple[Any, ...]:
    from .listeners import Listener

    given = tuple(value or ())
    wrong = [type(item).__name__ for item in given if not isinstance(item, Listener)]
    if wrong or not (value is None or isinstance(value, (list, tuple))):
        raise InvalidTypeError(f"{name} must be a list of elistimator_tracking.Listener objects, got {value!r}")
    return given


def _retention(name: str, value: Any) -> Any:
    from .checkpoints import KeepBest

    if value is not None and not isinstance(value, KeepBest):
        raise InvalidTypeError(
            f"{name} must be None (the store keeps every checkpoint) or KeepBest(k, metric, mode), got {value!r}"
        )
    return value


@dataclass(frozen=True)
class Settings:
    """How an Elistimator runs and where it tracks: every keyword option of ``Elistimator(...)`` and
    ``Elistimator.from_disk(...)``."""

    session_args: dict[str, Any] = option(
        dict, lambda n, v: _checked_session_args(v), "keyword arguments for tf.Session (target, config)"
    )
    verbose: bool = option(True, lambda n, v: bool(v), "progress bars, and the metrics line after validate()")
    summary_every_n_steps: int = option(
        10,
        _positive,
        "the training loss (and the model's own tf.summary ops) go to "
        "TensorBoard, and train/loss to the MLflow run, every this many global steps",
    )
    tracking: bool | str | os.PathLike | Tracker = option(
        True,
        _tracking,
        "True (MLflow at MLFLOW_TRACKING_URI, else MLflow's default sqlite:///mlflow.db; a "
        "model directory's recorded store when resuming), a tracking URI, a Tracker object, or False",
    )
    experiment: str | None = option(
        None,
        _name,
        "the MLflow experiment (default: $MLFLOW_EXPERIMENT_NAME, else MLflow's Default experiment; "
        "for from_disk, the recorded one, else the directory's name)",
    )
    run_name: str | None = option(None, _name, "the MLflow run's name")
    tags: dict[str, str] = option(dict, _tags, "extra tags of the MLflow run")
    distribute: Any = option(
        None,
        _strategy,
        "a tf.distribute MirroredStrategy or MultiWorkerMirroredStrategy: "
        "model_fn runs once per replica, each on its slice of the input function's global batch",
    )
    system_metrics: bool = option(
        False,
        _system_metrics,
        "sample CPU, memory, disk, network and GPU use into the run as "
        "system/<metric> every 10 s (MLflow's monitors); off by default",
    )
    listeners: tuple[Any, ...] = option(
        tuple,
        _listeners,
        "Listener objects told of every moment of training "
        "(setup, training summaries, validations, checkpoints, evaluations, the end)",
    )
    store_retention: Any = option(
        None,
        _retention,
        "None: the tracking store keeps every checkpoint; "
        "KeepBest(k, metric, mode): only the k best by the validation metric, and the latest",
    )
    trust_store: bool = option(
        False,
        _boolean,
        "from_disk loads a remote checkpoint whose graph holds ops beyond what models need (file I/O, Python "
        "calls; graph_safety.py): for a store you trust",
    )
    cache_dir: Path | None = option(
        None,
        _path,
        "where from_disk keeps downloaded checkpoints (default: "
        "$ELISTIMATOR_CACHE_DIR or ~/.cache/elistimator_tracking/downloads)",
    )

    @classmethod
    def checked(cls, **options: Any) -> Settings:
        """Settings from the options given (their names as the signatures spell them), each checked."""
        known = {spec.name: spec for spec in fields(cls)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise InvalidTypeError(f"unknown option(s) {unknown}; the options are {sorted(known)}")
        return cls(**{name: known[name].metadata["check"](name, value) for name, value in options.items()})

    @classmethod
    def given(cls, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The options among a call's ``arguments`` (its ``locals()``): the public signatures spell each
        option out, then hand them here by name."""
        names = {spec.name for spec in fields(cls)}
        return {name: value for name, value in arguments.items() if name in names}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """``{option: default}`` as a signature spells it (None where the kept value is a fresh empty one)."""
        return {spec.name: spec.default if spec.default is not MISSING else None for spec in fields(cls)}

    @classmethod
    def docs(cls) -> dict[str, str]:
        return {spec.name: spec.metadata["doc"] for spec in fields(cls)}


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
