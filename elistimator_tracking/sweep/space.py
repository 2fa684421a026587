"""A sweep's search space: Optuna's own distributions by param name, checked before any trial runs,
suggested through the trial's public ``suggest_*`` calls, and written as JSON for the parent run."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
    json_to_distribution,
)

from ..errors import InvalidTypeError, InvalidValueError
from ..tracking.run_info import mlflow_name

Space = Mapping[str, BaseDistribution]
KINDS = "optuna.distributions.FloatDistribution, IntDistribution or CategoricalDistribution"


def checked_space(space: Any) -> dict[str, BaseDistribution]:
    """``space`` as ``{name: distribution}``, or an error naming the entry that is wrong and what is
    expected (raised when the sweep is made: before any trial, before any training)."""
    if space is None:
        return {}
    if not isinstance(space, Mapping):
        raise InvalidTypeError(f"space must be a dict of {{param name: distribution}}, got {type(space).__name__}")
    checked: dict[str, BaseDistribution] = {}
    for name, distribution in space.items():
        if not isinstance(name, str) or not name:
            raise InvalidValueError(f"space: a param name must be a non-empty string, got {name!r}")
        if mlflow_name(name) != name:
            raise InvalidValueError(
                f"space: param name {name!r} is not a name MLflow takes (letters, digits, _ - . space / only)"
            )
        if not isinstance(distribution, (FloatDistribution, IntDistribution, CategoricalDistribution)):
            raise InvalidTypeError(
                f"space[{name!r}] must be one of {KINDS}, got {type(distribution).__name__} ({distribution!r})"
            )
        if isinstance(distribution, CategoricalDistribution) and len(distribution.choices) < 1:
            raise InvalidValueError(f"space[{name!r}] has no choices")
        checked[name] = distribution
    return checked


def consistent(space: Space, recorded: Mapping[str, BaseDistribution], study: str) -> None:
    """Refuse a space that redefines a param the study already searches differently (another worker's
    or an earlier run's space): Optuna would mix two searches in one study."""
    for name, distribution in space.items():
        known = recorded.get(name)
        if known is not None and known != distribution:
            raise InvalidValueError(
                f"space[{name!r}] is {distribution!r}, but study {study!r} searches it as {known!r}: "
                "use the same space in every worker, or another study name"
            )


def suggest(trial: optuna.trial.Trial, space: Space) -> dict[str, Any]:
    """The trial's value of each param of ``space`` (a retried trial gets the killed attempt's)."""
    values: dict[str, Any] = {}
    for name, d in space.items():
        if isinstance(d, FloatDistribution):
            values[name] = trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)
        elif isinstance(d, IntDistribution):
            values[name] = trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
        elif isinstance(d, CategoricalDistribution):
            values[name] = trial.suggest_categorical(name, d.choices)
    return values


def to_json(space: Space) -> str:
    return json.dumps({name: json.loads(distribution_to_json(d)) for name, d in sorted(space.items())})


def from_json(text: str | None) -> dict[str, BaseDistribution]:
    if not text:
        return {}
    return {name: json_to_distribution(json.dumps(d)) for name, d in json.loads(text).items()}
