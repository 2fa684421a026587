"""Optuna's way to survive a killed worker: the RDB storage with heartbeats and the retry callback,
and which attempts of one trial a retried trial stands for (its model directory and run are the first
attempt's)."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial

CREATE_ATTEMPTS = 5  # making the storage, while another worker creates its tables


def first_attempt(trial: optuna.trial.Trial | FrozenTrial) -> int:
    """The number of the trial's first attempt (itself, unless Optuna retried a killed one)."""
    history = retry_history(trial)
    return history[0] if history else trial.number


def retry_history(trial: optuna.trial.Trial | FrozenTrial) -> list[int]:
    """The numbers of the killed attempts this trial retries, oldest first (Optuna's retry callback)."""
    if not isinstance(trial, FrozenTrial):  # a running trial: its record in the storage
        trial = trial.storage.get_trial(trial._trial_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return list(RetryHeartbeatStaleTrialCallback.retry_history(trial))


def trial_storage(
    url: str, heartbeat_interval: int = 10, grace_period: int | None = None, max_retry: int | None = 3
) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage at ``url`` (``sqlite:///sweep.db``; ``postgresql+psycopg://...`` shared)
    with heartbeats: a trial whose process stops beating for ``grace_period`` seconds (default: twice
    the interval) is failed by the next worker to start a trial, and retried (up to ``max_retry``
    times) as a new trial that continues its model directory and run. Workers that start at once on an
    empty database race to create Optuna's tables (the loser's ``CREATE TABLE alembic_version`` fails
    in PostgreSQL, measured): the loser tries again, and finds them. A SQLite file's folder is made
    when missing (SQLite makes the file, not its folder)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    location = make_url(url)
    if location.get_backend_name() == "sqlite" and location.database not in (None, "", ":memory:"):
        Path(location.database).parent.mkdir(parents=True, exist_ok=True)
    attempt = 0
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
                )
        except DBAPIError:  # workers starting at once on an empty database race to create Optuna's tables
            attempt += 1
            if attempt == CREATE_ATTEMPTS:
                raise
            time.sleep(0.5 * attempt)
