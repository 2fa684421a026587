"""The checkpoint index and the one selection policy every caller shares.

The index knows, per global step, the checkpoint's path prefix (relative to the model
directory), its file checksums, whether its files are still on local disk, and the
validation metrics recorded at that step. It knows nothing of where files live
beyond that flag: storage (local disk, run artifacts) resolves a chosen step.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import CheckpointNotFoundError, InvalidValueError

MODES = ("min", "max")
Selection = str | int  # 'latest', 'best' or a global step


@dataclass
class CheckpointRecord:
    step: int
    prefix: str  # relative to the model directory, e.g. "checkpoints/model-143"
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    local: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"prefix": self.prefix, "files": self.files, "local": self.local}

    @classmethod
    def from_json(cls, step: int, data: Mapping[str, Any]) -> CheckpointRecord:
        return cls(
            step=step,
            prefix=str(data["prefix"]),
            files=dict(data.get("files", {})),
            local=bool(data.get("local", True)),
        )


class CheckpointIndex:
    """Checkpoints by global step, and validation metrics by global step."""

    def __init__(
        self, records: Iterable[CheckpointRecord] = (), validations: Mapping[int, Mapping[str, float]] | None = None
    ):
        self.records: dict[int, CheckpointRecord] = {r.step: r for r in records}
        self.validations: dict[int, dict[str, float]] = {int(s): dict(m) for s, m in (validations or {}).items()}

    def add(self, record: CheckpointRecord) -> None:
        self.records[record.step] = record

    def record_validation(self, step: int, metrics: Mapping[str, float]) -> None:
        self.validations[step] = dict(metrics)

    def drop_after(self, step: int) -> list[int]:
        """Forget checkpoints and validations later than ``step``; return the checkpoint steps dropped."""
        dropped = sorted(s for s in self.records if s > step)
        for later in dropped:
            del self.records[later]
        for later in [s for s in self.validations if s > step]:
            del self.validations[later]
        return dropped

    def holds(self, clause: Mapping[str, Any]) -> bool:
        """Whether this index holds what tracking work was journaled for before a commit: a checkpoint
        with these files (``{"kind": "checkpoint", "step", "files"}``), a validation with these metrics
        (``"validation"``, ``"metrics"``), or a branch that dropped these validations (``"branch"``,
        ``"dropped"``: ``{step: metrics}``, held when none of them is here any more)."""
        kind, step = clause.get("kind"), int(clause.get("step", -1))
        if kind == "checkpoint":
            record = self.records.get(step)
            return record is not None and record.files == clause["files"]
        if kind == "validation":
            return _same(self.validations.get(step), clause["metrics"])
        if kind == "branch":
            return not any(_same(self.validations.get(int(s)), m) for s, m in clause["dropped"].items())
        raise InvalidValueError(f"unknown commit clause {clause!r}")

    def metrics(self, step: int) -> dict[str, float]:
        return dict(self.validations.get(step, {}))

    def steps(self, local_only: bool = False) -> list[int]:
        return sorted(s for s, r in self.records.items() if r.local or not local_only)

    def to_json(self) -> dict[str, Any]:
        return {
            "checkpoints": {str(s): r.to_json() for s, r in sorted(self.records.items())},
            "validations": {str(s): m for s, m in sorted(self.validations.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckpointIndex:
        records = [CheckpointRecord.from_json(int(step), entry) for step, entry in data.get("checkpoints", {}).items()]
        validations = {int(step): metrics for step, metrics in data.get("validations", {}).items()}
        return cls(records, validations)


def _same(metrics: Mapping[str, float] | None, other: Mapping[str, float]) -> bool:
    """Equal metric dicts, NaN equal to NaN (as JSON writes them)."""
    return metrics is not None and json.dumps(metrics, sort_keys=True) == json.dumps(other, sort_keys=True)


def checked_selection(checkpoint: Any) -> Selection:
    """``checkpoint`` as ``from_disk`` takes it: ``'latest'``, ``'best'`` or a global step (an int)."""
    if checkpoint in ("latest", "best") and isinstance(checkpoint, str):
        return checkpoint
    if isinstance(checkpoint, numbers.Integral) and not isinstance(checkpoint, bool) and checkpoint >= 0:
        return int(checkpoint)
    raise InvalidValueError(
        f"checkpoint must be 'latest', 'best' or a global step, got {checkpoint!r} (a step is an int >= 0)"
    )


def checked_mode(mode: Any) -> str:
    if mode not in MODES:
        raise InvalidValueError(f"mode must be 'min' or 'max', got {mode!r}")
    return mode


def select_step(index: CheckpointIndex, checkpoint: Selection, metric: str = "loss", mode: str = "min") -> int:
    """The step ``checkpoint`` ('latest', 'best' by ``metric``/``mode``, or a step) names in ``index``."""
    checkpoint = checked_selection(checkpoint)
    if checkpoint == "latest":
        return latest_step(index)
    if checkpoint == "best":
        return best_step(index, metric, mode)
    if checkpoint not in index.records:
        raise CheckpointNotFoundError(f"there is no checkpoint at step {checkpoint}; checkpoints: {index.steps()}")
    return checkpoint


def latest_step(index: CheckpointIndex) -> int:
    """The greatest global step with a checkpoint."""
    steps = index.steps()
    if not steps:
        raise CheckpointNotFoundError("there is no checkpoint: call save_ckpt()")
    return steps[-1]


def best_step(index: CheckpointIndex, metric: str = "loss", mode: str = "min") -> int:
    """The checkpoint whose validation ``metric`` is best (``mode`` 'min' or 'max').

    Checkpoints without that metric never win; NaN never wins; ties go to the later step.
    """
    checked_mode(mode)
    candidates = {}
    for step in index.steps():
        value = index.metrics(step).get(metric)
        if value is not None and not math.isnan(value):
            candidates[step] = value
    if not candidates:
        recorded = sorted({name for step in index.steps() for name in index.metrics(step)})
        raise CheckpointNotFoundError(
            f"no checkpoint has a validation metric {metric!r} to select by; metrics recorded at checkpoints: "
            f"{recorded or 'none (validate() at the step you save)'}"
        )
    sign = 1 if mode == "min" else -1
    return min(candidates, key=lambda step: (sign * candidates[step], -step))
