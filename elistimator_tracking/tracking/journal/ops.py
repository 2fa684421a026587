"""The journal's operations: typed records, one JSON line each, with a format version.

A line is ``{"v": 2, "seq": N, "op": "<kind>", "run": "<run key>", ...fields, "commit": {...}}``.
Lines without ``"v"`` were written by release 0.1 (format 1): the same fields, read the same way.
``decode`` turns a line into an operation or raises ``Undecodable`` saying why: not JSON, not an
object, no sequence number, a kind or a commit clause this version does not know (a newer
writer's), a format newer than this one, a field missing or of the wrong shape. The journal
moves such a line to its quarantine file (``spool.py``) and delivery goes on with the rest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

FORMAT = 2
CLAUSE_KINDS = ("checkpoint", "validation", "branch")


class Undecodable(Exception):
    """A journal line this version cannot act on; ``str()`` says why."""


# -- field checks: each returns the value as the operation keeps it, or raises Undecodable ----------


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise Undecodable(f"expected a string, got {_shown(value)}")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Undecodable(f"expected an integer, got {_shown(value)}")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Undecodable(f"expected true or false, got {_shown(value)}")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Undecodable(f"expected a number, got {_shown(value)}")
    return float(value)


def _text_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise Undecodable(f"expected an object of strings, got {_shown(value)}")
    return {_text(k): _text(v) for k, v in value.items()}


def _number_map(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise Undecodable(f"expected an object of numbers, got {_shown(value)}")
    return {_text(k): _number(v) for k, v in value.items()}


def _shown(value: Any) -> str:
    """A value as a message shows it: a short repr, with its type when it is not a plain scalar."""
    if value is None or isinstance(value, (str, bool, int, float)):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    text = json.dumps(value, default=repr)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def _checked(check: Callable[[Any], Any], **options: Any) -> Any:
    return field(metadata={"check": check}, **options)


# -- the commit clause --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clause:
    """What a held operation belongs to: a checkpoint (``step``, ``files``), a validation (``step``,
    ``metrics``) or a branch (``step``, ``dropped``: ``{step: metrics}``) that ``elistimator.json``
    was about to commit. ``CheckpointIndex.holds(clause.to_json())`` says whether it did."""

    kind: str
    step: int
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "step": self.step, **self.data}

    @classmethod
    def decode(cls, value: Any) -> Clause:
        if not isinstance(value, Mapping):
            raise Undecodable(f"its commit clause is not an object ({_shown(value)})")
        kind = value.get("kind")
        if kind not in CLAUSE_KINDS:
            raise Undecodable(f"its commit clause has a kind this version does not know ({_shown(kind)})")
        step = _integer(value.get("step"))
        data: dict[str, Any]
        if kind == "checkpoint":
            data = {"files": _text_map(value.get("files"))}
        elif kind == "validation":
            data = {"metrics": _number_map(value.get("metrics"))}
        else:
            dropped = value.get("dropped")
            if not isinstance(dropped, Mapping) or not all(str(s).isdigit() for s in dropped):
                raise Undecodable(f"its branch clause's 'dropped' is not an object by step ({_shown(dropped)})")
            data = {"dropped": {str(s): _number_map(m) for s, m in dropped.items()}}
        return cls(kind, step, data)


# -- the operations --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Op:
    """One journaled operation of the run named by ``run`` (its run key); ``seq`` orders them."""

    KIND: ClassVar[str] = ""
    seq: int = _checked(_integer, default=0)
    run: str = _checked(_text, default="")
    commit: Clause | None = None

    @property
    def kind(self) -> str:
        return self.KIND

    def numbered(self, seq: int, commit: Clause | None = None) -> Op:
        return type(self)(**{**self._fields(), "seq": seq, "commit": commit})

    def settled(self) -> Op:
        """This operation without its commit clause: ``elistimator.json`` holds what it belongs to."""
        return type(self)(**{**self._fields(), "commit": None})

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"v": FORMAT, "seq": self.seq, "op": self.KIND, "run": self.run}
        for name, value in self._fields().items():
            if name not in ("seq", "run", "commit"):
                data[name] = value
        if self.commit is not None:
            data["commit"] = self.commit.to_json()
        return data

    def encode(self) -> str:
        """One journal line (no newline)."""
        return json.dumps(self.to_json(), separators=(",", ":"), allow_nan=True)

    def _fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, kw_only=True)
class Start(Op):
    """Create the run (found again by its run key), or resume ``run_id``."""

    KIND: ClassVar[str] = "start"
    experiment: str = _checked(_text)
    run_name: str | None = _checked(_optional_text, default=None)
    tags: dict[str, str] = _checked(_text_map, default_factory=dict)
    run_id: str | None = _checked(_optional_text, default=None)


@dataclass(frozen=True, kw_only=True)
class Params(Op):
    KIND: ClassVar[str] = "params"
    params: dict[str, str] = _checked(_text_map)


@dataclass(frozen=True, kw_only=True)
class Tags(Op):
    KIND: ClassVar[str] = "tags"
    tags: dict[str, str] = _checked(_text_map)


@dataclass(frozen=True, kw_only=True)
class Metrics(Op):
    """Metric points at one global ``step`` (``timestamp`` in ms: a replay sends the same points);
    ``model_key`` links them to a checkpoint's logged model."""

    KIND: ClassVar[str] = "metrics"
    metrics: dict[str, float] = _checked(_number_map)
    step: int = _checked(_integer)
    timestamp: int = _checked(_integer)
    model_key: str | None = _checked(_optional_text, default=None)


@dataclass(frozen=True, kw_only=True)
class Input(Op):
    """A dataset the run used for ``context`` (MLflow dataset fields)."""

    KIND: ClassVar[str] = "input"
    dataset: dict[str, str] = _checked(_text_map)
    context: str = _checked(_text)


@dataclass(frozen=True, kw_only=True)
class Artifacts(Op):
    """Upload the outbox folder ``directory`` under ``artifact_path`` of the run."""

    KIND: ClassVar[str] = "artifacts"
    directory: str = _checked(_text)
    artifact_path: str = _checked(_text)


@dataclass(frozen=True, kw_only=True)
class LoggedModel(Op):
    """Make the one-checkpoint model directory in the outbox folder ``directory`` the logged model of
    the checkpoint ``key`` at ``step`` (``metadata_only``: the model exists; only its
    ``elistimator.json`` changed, its validation metrics)."""

    KIND: ClassVar[str] = "logged_model"
    directory: str = _checked(_text)
    step: int = _checked(_integer)
    key: str = _checked(_text)
    metadata_only: bool = _checked(_boolean, default=False)


@dataclass(frozen=True, kw_only=True)
class DeleteModel(Op):
    """Delete the logged model of the checkpoint ``key`` at ``step`` from the store (the run's
    retention policy dropped it), unless a registered version uses it."""

    KIND: ClassVar[str] = "delete_model"
    step: int = _checked(_integer)
    key: str = _checked(_text)


@dataclass(frozen=True, kw_only=True)
class Finish(Op):
    KIND: ClassVar[str] = "finish"
    status: str = _checked(_text)
    error: str | None = _checked(_optional_text, default=None)


KINDS: dict[str, type[Op]] = {
    cls.KIND: cls for cls in (Start, Params, Tags, Metrics, Input, Artifacts, LoggedModel, DeleteModel, Finish)
}


def decode(line: str) -> Op:
    """The operation a journal line holds; ``Undecodable`` saying why it cannot be acted on."""
    try:
        data = json.loads(line)
    except ValueError as error:
        raise Undecodable(f"it is not JSON ({error})") from None
    if not isinstance(data, dict):
        raise Undecodable(f"it is not a JSON object ({_shown(data)})")
    version = data.get("v", 1)
    if version not in (1, FORMAT):
        raise Undecodable(
            f"it was written in journal format {_shown(version)}; this version reads formats 1 and "
            f"{FORMAT} (a newer elistimator_tracking delivers it)"
        )
    if isinstance(data.get("seq"), bool) or not isinstance(data.get("seq"), int) or data["seq"] < 1:
        raise Undecodable(f"it has no sequence number ({_shown(data.get('seq'))})")
    if not isinstance(data.get("run"), str):
        raise Undecodable(f"it names no run ({_shown(data.get('run'))})")
    kind = data.get("op")
    cls = KINDS.get(kind) if isinstance(kind, str) else None  # a list or an object is no kind either
    if cls is None:
        raise Undecodable(f"its operation {_shown(data.get('op'))} is not one this version knows")
    values: dict[str, Any] = {}
    for spec in fields(cls):
        if spec.name == "commit":
            continue
        if spec.name not in data:
            if spec.default is MISSING and spec.default_factory is MISSING:
                raise Undecodable(f"its {cls.KIND!r} operation lacks the field {spec.name!r}")
            continue
        try:
            values[spec.name] = spec.metadata["check"](data[spec.name])
        except Undecodable as why:
            raise Undecodable(f"its field {spec.name!r}: {why}") from None
    if data.get("commit") is not None:
        values["commit"] = Clause.decode(data["commit"])
    return cls(**values)
