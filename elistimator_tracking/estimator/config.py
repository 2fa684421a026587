"""``RunConfig``: tf.estimator 1.15's run settings, and how each maps onto the Elistimator."""

from __future__ import annotations

import os
from typing import Any

from ..errors import InvalidTypeError, InvalidValueError, NotSupportedError

_DEFAULT = object()  # tf.estimator's _USE_DEFAULT: save every 600 s unless steps or secs are given
DISTRIBUTE_FEATURE = "RunConfig(train_distribute=..., eval_distribute=...)"


def _positive(name: str, value: Any, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValueError(
            f"RunConfig: {name} must be a positive int{' or None' if allow_none else ''}, got {value!r}"
        )
    return value


_REPLACEABLE = (
    "model_dir",
    "tf_random_seed",
    "save_summary_steps",
    "save_checkpoints_steps",
    "save_checkpoints_secs",
    "session_config",
    "keep_checkpoint_max",
    "keep_checkpoint_every_n_hours",
    "log_step_count_steps",
    "train_distribute",
    "eval_distribute",
)


class RunConfig:
    """Where and how an ``Estimator`` runs (tf.estimator's constructor arguments and defaults).

    Used: ``model_dir``, ``tf_random_seed`` (the graph seed), ``save_summary_steps`` (training
    loss and ``tf.summary`` ops to TensorBoard and MLflow), ``save_checkpoints_steps`` /
    ``save_checkpoints_secs`` (at most one; neither: every 600 s), ``keep_checkpoint_max``
    (files kept locally; every checkpoint stays in the MLflow run), ``log_step_count_steps``,
    ``session_config``. ``train_distribute`` / ``eval_distribute`` are stored for tf.distribute.
    """

    def __init__(
        self,
        model_dir: str | None = None,
        tf_random_seed: int | None = None,
        save_summary_steps: int = 100,
        save_checkpoints_steps: Any = _DEFAULT,
        save_checkpoints_secs: Any = _DEFAULT,
        session_config: Any = None,
        keep_checkpoint_max: int = 5,
        keep_checkpoint_every_n_hours: int = 10000,
        log_step_count_steps: int = 100,
        train_distribute: Any = None,
        device_fn: Any = None,
        protocol: Any = None,
        eval_distribute: Any = None,
        experimental_distribute: Any = None,
        experimental_max_worker_delay_secs: Any = None,
        session_creation_timeout_secs: int = 7200,
    ):
        if model_dir is not None and not isinstance(model_dir, (str, os.PathLike)):
            raise InvalidTypeError(f"RunConfig: model_dir must be a str or Path, got {type(model_dir).__name__}")
        steps_given, secs_given = save_checkpoints_steps is not _DEFAULT, save_checkpoints_secs is not _DEFAULT
        steps = save_checkpoints_steps if steps_given else None
        secs = save_checkpoints_secs if secs_given else (None if steps_given and steps is not None else 600)
        if steps is not None and secs is not None:
            raise InvalidValueError("RunConfig: save_checkpoints_steps and save_checkpoints_secs cannot both be set")
        for name, value in (
            ("device_fn", device_fn),
            ("protocol", protocol),
            ("experimental_distribute", experimental_distribute),
        ):
            if value is not None:
                raise NotSupportedError(f"RunConfig: {name} is not supported (local, in-process training only)")
        self.model_dir = os.fspath(model_dir) if model_dir is not None else None
        self.tf_random_seed = tf_random_seed
        self.save_summary_steps = _positive("save_summary_steps", save_summary_steps, allow_none=False)
        self.save_checkpoints_steps = _positive("save_checkpoints_steps", steps)
        self.save_checkpoints_secs = _positive("save_checkpoints_secs", secs)
        self.session_config = session_config
        self.keep_checkpoint_max = (
            None if keep_checkpoint_max in (None, 0) else _positive("keep_checkpoint_max", keep_checkpoint_max)
        )
        self.keep_checkpoint_every_n_hours = keep_checkpoint_every_n_hours
        self.log_step_count_steps = _positive("log_step_count_steps", log_step_count_steps)
        self.train_distribute = train_distribute
        self.eval_distribute = eval_distribute
        self.experimental_max_worker_delay_secs = experimental_max_worker_delay_secs
        self.session_creation_timeout_secs = session_creation_timeout_secs
        # what tf.estimator's local (non-distributed) run reports
        self.task_type, self.task_id, self.num_ps_replicas, self.num_worker_replicas = "worker", 0, 0, 1
        self.is_chief, self.master, self.evaluation_master, self.cluster_spec = True, "", "", None
        self.global_id_in_cluster, self.service = 0, None

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` (tf.estimator's ``RunConfig.replace``)."""
        unknown = sorted(set(changes) - set(_REPLACEABLE))
        if unknown:
            raise InvalidValueError(
                f"Replacing {', '.join(unknown)} is not supported. Allowed properties are {list(_REPLACEABLE)}"
            )
        current = {name: getattr(self, name) for name in _REPLACEABLE}
        if "save_checkpoints_steps" in changes and "save_checkpoints_secs" not in changes:
            current["save_checkpoints_secs"] = None
        if "save_checkpoints_secs" in changes and "save_checkpoints_steps" not in changes:
            current["save_checkpoints_steps"] = None
        return RunConfig(**{**current, **changes})

    def session_args(self) -> dict[str, Any]:
        """The ``tf.Session`` arguments (``session_config``)."""
        return {"config": self.session_config} if self.session_config is not None else {}

    def distribute(self) -> dict[str, Any] | None:
        """The tf.distribute strategies, for the Elistimator's ``distribute=`` argument (None: local)."""
        if self.train_distribute is None and self.eval_distribute is None:
            return None
        return {"train": self.train_distribute, "eval": self.eval_distribute}

    def __repr__(self) -> str:
        return (
            f"RunConfig(model_dir={self.model_dir!r}, tf_random_seed={self.tf_random_seed}, "
            f"save_summary_steps={self.save_summary_steps}, save_checkpoints_steps={self.save_checkpoints_steps}, "
            f"save_checkpoints_secs={self.save_checkpoints_secs}, keep_checkpoint_max={self.keep_checkpoint_max}, "
            f"log_step_count_steps={self.log_step_count_steps})"
        )
