"""The checkpoint index, and which of its checkpoints a selection names (latest, best, a step).

The index knows, per global step, the checkpoint's path prefix (relative to the model
directory), its file checksums, whether its files are still on local disk, and the
validation metrics recorded at that step. It knows nothing of where files live
beyond that flag: storage (local disk, the run's logged models) resolves a chosen step. Which
value is best is ``criterion.py``'s: the one policy every caller shares.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .criterion import Criterion
from .errors import CheckpointNotFoundError, InvalidValueError

Selection = str | int  # 'latest', 'best' or a global step


@dataclass
class CheckpointRecord:
    step: int
    prefix: str  # relative to the model directory, e.g. "checkpoints/model-143"
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    local: bool = True  # its files are on local disk (max_to_keep prunes them)
    stored: bool = True  # the tracking store keeps it (a retention policy, ``KeepBest``, retires it)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"prefix": self.prefix, "files": self.files, "local": self.local}
        if not self.stored:
            data["stored"] = False
        return data

    @classmethod
    def from_json(cls, step: int, data: Mapping[str, Any]) -> CheckpointRecord:
        return cls(
            step=step,
            prefix=str(data["prefix"]),
            files=dict(data.get("files", {})),
            local=bool(data.get("local", True)),
            stored=bool(data.get("stored", True)),
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
    if isinstance(checkpoint, numbers.Integral) and not isinstance(checkpoint, bool) and int(checkpoint) >= 0:
        return int(checkpoint)
    raise InvalidValueError(
        f"checkpoint must be 'latest', 'best' or a global step, got {checkpoint!r} (a step is an int >= 0)"
    )


def select_step(index: CheckpointIndex, checkpoint: Selection, metric: str = "loss", mode: str = "auto") -> int:
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


def best_step(index: CheckpointIndex, metric: str = "loss", mode: str = "auto") -> int:
    """The checkpoint whose validation ``metric`` is best by ``Criterion(metric, mode)``.

    Checkpoints without that metric never win; NaN never wins; ties go to the later step.
    """
    step = Criterion(metric, mode).best({step: index.metrics(step).get(metric) for step in index.steps()})
    if step is None:
        recorded = sorted({name for step in index.steps() for name in index.metrics(step)})
        raise CheckpointNotFoundError(
            f"no checkpoint has a validation metric {metric!r} to select by; metrics recorded at checkpoints: "
            f"{recorded or 'none (validate() at the step you save)'}"
        )
    return step


@dataclass(frozen=True)
class KeepBest:
    """A store retention policy: the tracking store keeps only the ``k`` best checkpoints and the latest.

    Best is by validation ``metric`` in ``mode`` (``Criterion``); the others are deleted from the
    store once their successor is delivered (a registered version's never is). Locally,
    ``max_to_keep`` decides, as always. Pass it as ``Elistimator(..., store_retention=KeepBest(2))``.

    Args:
        k: how many of the best checkpoints the store keeps (besides the latest).
        metric: the validation metric that ranks them.
        mode: ``'min'``, ``'max'`` or ``'auto'``.

    Raises:
        InvalidValueError: ``k`` is not a positive int, or ``metric`` / ``mode`` is refused.
    """

    k: int
    metric: str = "loss"
    mode: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise InvalidValueError(f"KeepBest(k) must be a positive int, got {self.k!r}")
        Criterion(self.metric, self.mode)  # checks both

    def kept(self, index: CheckpointIndex) -> set[int]:
        """The steps the store keeps: the latest checkpoint and the ``k`` best (a checkpoint without the
        metric is not among the best)."""
        steps = index.steps()
        if not steps:
            return set()
        criterion = Criterion(self.metric, self.mode)
        values = {step: index.metrics(step).get(self.metric) for step in steps}
        kept = {steps[-1]}
        for _ in range(self.k):
            best = criterion.best(values)
            if best is None:
                break
            kept.add(best)
            del values[best]
        return kept
