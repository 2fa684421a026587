"""The tracked run: one typed, immutable record of the MLflow run a model directory tracks to.

It is what ``elistimator.json`` keeps of the run (``to_json``: the same keys release 0.1 wrote,
so every model directory written before still loads and resumes), what the tracker resumes, and
what the remote side, ``sync`` and the registry are given. A leaf module: no MLflow import.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ModelDirectoryError

RUN_STATUSES = ("FINISHED", "FAILED", "KILLED")


@dataclass(frozen=True)
class RunRecord:
    """The run: where it is tracked (``tracking_uri``, without credentials), its experiment, the
    ``run_key`` that names it for good (the run's ``elistimator.run_key`` tag), its MLflow
    ``run_id`` once the store created it, and ``status`` once ``close()`` ended it (None while it
    is open, or after a process died without closing it)."""

    tracking_uri: str
    experiment: str
    run_key: str
    run_id: str | None = None
    status: str | None = None

    @classmethod
    def new(cls, tracking_uri: str, experiment: str) -> RunRecord:
        return cls(tracking_uri, experiment, uuid.uuid4().hex)

    def with_run_id(self, run_id: str | None) -> RunRecord:
        return self if run_id is None or run_id == self.run_id else replace(self, run_id=run_id)

    def ended(self, status: str | None) -> RunRecord:
        """The record after ``close()`` ended the run with ``status`` (None: open again, resumed)."""
        if status is not None and status not in RUN_STATUSES:
            raise ModelDirectoryError(f"a run's status is one of {RUN_STATUSES}, got {status!r}")
        return replace(self, status=status)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "tracking_uri": self.tracking_uri,
            "experiment": self.experiment,
            "run_key": self.run_key,
            "run_id": self.run_id,
        }
        if self.status is not None:
            data["status"] = self.status
        return data

    @classmethod
    def from_json(cls, data: Any, where: object = "elistimator.json") -> RunRecord:
        """The record ``elistimator.json`` holds; a ``ModelDirectoryError`` naming ``where`` when
        it is malformed."""
        if not isinstance(data, Mapping):
            raise ModelDirectoryError(f"{where} has a malformed 'tracking' record (not an object)")
        for key in ("tracking_uri", "experiment", "run_key"):
            if not isinstance(data.get(key), str) or (key != "tracking_uri" and not data[key]):
                raise ModelDirectoryError(f"{where} has a malformed 'tracking' record: {key!r} is not a string")
        for key in ("run_id", "status"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ModelDirectoryError(f"{where} has a malformed 'tracking' record: {key!r} is not a string")
        if data.get("status") is not None and data["status"] not in RUN_STATUSES:
            raise ModelDirectoryError(f"{where} records an unknown run status {data['status']!r}")
        return cls(data["tracking_uri"], data["experiment"], data["run_key"], data.get("run_id"), data.get("status"))
