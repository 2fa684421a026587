"""What the Estimator's calls take and give back, checked as tf.estimator 2.15 checked them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .._tf import tf
from ..distribute import checked_strategy
from ..errors import InvalidTypeError, InvalidValueError
from .config import DISTRIBUTE_FEATURE, RunConfig


def count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidValueError(f"{name} must be a positive int or None, got {value!r}")
    if value <= 0:
        raise InvalidValueError(f"Must specify {name} > 0, given: {value}")
    return int(value)


def checked_listeners(saving_listeners: Any, config: RunConfig) -> list[Any]:
    listeners = list(saving_listeners or [])
    for listener in listeners:
        if not isinstance(listener, tf.train.CheckpointSaverListener):
            raise InvalidTypeError(
                f"saving_listeners must be a list of CheckpointSaverListener (tf.compat.v1.train), given: {listener!r}"
            )
    if listeners and not (config.save_checkpoints_steps or config.save_checkpoints_secs):
        raise InvalidValueError(
            "There should be a CheckpointSaverHook to use saving_listeners. Please set one of the "
            "RunConfig.save_checkpoints_steps or RunConfig.save_checkpoints_secs."
        )
    return listeners


def examples(batch: dict[str, np.ndarray], single: bool, one_by_one: bool) -> Iterator[Any]:
    """A batch of predictions as tf.estimator yielded it."""
    if not one_by_one:
        yield batch["output"] if single else batch
        return
    sizes = {key: (int(value.shape[0]) if np.ndim(value) else None) for key, value in batch.items()}
    (length, *others) = set(sizes.values())
    if length is None or others:
        raise InvalidValueError(
            f"Batch length of predictions should be same; got {sizes} (with yield_single_examples=True "
            "every prediction needs the batch as its first dimension)"
        )
    for row in range(length):
        yield batch["output"][row] if single else {key: value[row] for key, value in batch.items()}


def strategy_of(config: RunConfig) -> Any:
    """The Elistimator's ``distribute=`` from ``RunConfig``: one graph trains and evaluates, so
    ``eval_distribute`` must be None or ``train_distribute`` itself. Batches are global (split
    across replicas), not per replica as in tf.estimator: README, "More than one device"."""
    train, evaluation = config.train_distribute, config.eval_distribute
    if evaluation is not None and evaluation is not train:
        raise InvalidValueError(
            f"{DISTRIBUTE_FEATURE}: eval_distribute must be None or the train_distribute strategy "
            "itself (the model trains and evaluates in one graph)"
        )
    return checked_strategy(train)
