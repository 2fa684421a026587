"""Where an Elistimator starts: a ``ModelOrigin``.

A model function gets a new (or empty) model directory and builds its graph at the first
``setup()`` (``new_model``). ``from_disk`` gets a saved model (``load``): a model
directory (local, or a verified download of ``runs:/...`` / ``models:/...``), its
checkpoint history and the checkpoint to restore, whose saved meta graph is imported
instead of calling a model function.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import metadata as metadata_file
from ._tf import tf
from .checkpoints import CheckpointIndex, Selection, checked_selection, select_step
from .commits import Commits
from .criterion import checked_mode
from .errors import CheckpointNotFoundError, InvalidTypeError, InvalidValueError, ModelDirectoryError
from .graph_safety import check_meta_file
from .listeners import Listeners
from .metadata import Metadata
from .model_dir import ModelDirectory, link_tree
from .model_graph import ModelFn, ModelGraph
from .settings import PathLike, SaverSettings, Settings
from .tracking.names import default_experiment, is_remote_source
from .tracking.run import RunRecord
from .writer_lock import WriterLock

if TYPE_CHECKING:
    from .checkpoint_manager import CheckpointManager
    from .loops import Loops


@dataclass
class ModelOrigin:
    """What an Elistimator starts from: its model directory and settings, the checkpoint history
    and saver settings so far, the run to resume, and either a model function (a new model) or
    the saved checkpoint to restore (``step``, with the tensor names in ``metadata``)."""

    directory: ModelDirectory
    settings: Settings
    experiment: str  # the experiment when the settings name none
    index: CheckpointIndex = field(default_factory=CheckpointIndex)
    saver: SaverSettings = field(default_factory=SaverSettings)
    recorded_run: RunRecord | None = None
    model_fn: ModelFn | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metadata: Metadata | None = None
    step: int | None = None
    temporary: tempfile.TemporaryDirectory | None = None  # backs the directory; lives as long as the model
    lock: InitVar[WriterLock | None] = None  # the directory's writer lock; a new model holds it from the start
    verified: bool = False  # the checkpoint's files were just checked: hard links of a verified download
    #: None: the user's own model directory, trusted as it is; else where a download came from
    #: (``runs:/...``): its meta graph is checked against the op allow-list first (``graph_safety.py``)
    untrusted_source: str | None = None

    writer: WriterLock = field(init=False)

    def __post_init__(self, lock: WriterLock | None) -> None:
        self.writer = lock if lock is not None else WriterLock(self.directory.path)

    def _saved(self) -> tuple[int, Metadata]:
        """The step to restore and the metadata naming its tensors (a new model has neither)."""
        assert self.step is not None and self.metadata is not None, "only a saved model is restored"
        return self.step, self.metadata

    def restored(self, checkpoints: CheckpointManager) -> Loops:
        """The loops of the saved checkpoint at ``step``: its meta graph imported and its variables
        restored, its files verified before anything is imported (fetched from the run when pruned)."""
        from .loops import Loops

        step, _ = self._saved()
        record = self.index.records[step]
        holder = checkpoints.holder(record)
        if record.local and not self.verified:
            checkpoints.verify(record)
        loops = Loops(self.import_graph(holder), self.settings, restoring=True)
        checkpoints.restore_step(loops, step, verified=True)
        return loops

    def commits(self, listeners: Listeners, metadata: Callable[[], Metadata]) -> Commits:
        """Writing this model's ``elistimator.json``, from the generation it was loaded at (none: new)."""
        generation = self.metadata.generation if self.metadata is not None else None
        return Commits(self.directory, listeners, metadata, self.writer, generation, self.index)

    def import_graph(self, holder: Path) -> ModelGraph:
        """Import the meta graph of the saved checkpoint at ``step`` from ``holder`` (the model
        directory, or a download of a pruned checkpoint)."""
        step, metadata = self._saved()
        record = self.index.records[step]
        meta = ModelDirectory(holder).resolve(record.prefix + ".meta")
        if not meta.is_file():
            raise ModelDirectoryError(f"the checkpoint at step {record.step} has no meta graph ({meta.name})")
        if self.untrusted_source is not None:
            check_meta_file(meta, self.untrusted_source)
        graph = tf.Graph()
        with graph.as_default():
            saver = tf.train.import_meta_graph(str(meta), clear_devices=True)
        try:
            return ModelGraph.from_names(graph, metadata.graph, saver)
        except (KeyError, ValueError, TypeError, AttributeError) as error:
            raise ModelDirectoryError(
                f"the metadata of {self.directory.path} does not match the saved graph: {error}"
            ) from None


def new_model(model_fn: Any, model_dir: PathLike | None, params: Any, settings: Settings) -> ModelOrigin:
    """A new model: its model directory is created when missing (a temporary one when none is
    given). A directory that holds another model's checkpoints is refused: it would mix two
    histories."""
    if not callable(model_fn):
        raise InvalidTypeError(
            f"model_fn must be callable as model_fn(features, is_training, params), got {type(model_fn).__name__}"
        )
    if params is not None and not isinstance(params, Mapping):
        raise InvalidTypeError(f"params must be a dict or None, got {type(params).__name__}")
    path, temporary, writer = _new_model_dir(model_dir)
    return ModelOrigin(
        ModelDirectory(path),
        settings,
        default_experiment(),
        model_fn=model_fn,
        params=dict(params or {}),
        temporary=temporary,
        lock=writer,
    )


def continued_model(model_fn: Any, model_dir: PathLike, params: Any, settings: Settings) -> ModelOrigin:
    """A model function over a model directory that may already hold its checkpoints (the estimator
    front end's contract: a new ``Estimator`` on the same ``model_dir`` goes on from its latest
    checkpoint). The graph is built by ``model_fn`` at the first ``setup()``; the history, saver
    settings and run to resume come from the directory. Without a model there, a new model."""
    directory = ModelDirectory(_checked_path(model_dir, "model_dir"))
    if not metadata_file.exists(directory):
        return new_model(model_fn, model_dir, params, settings)
    metadata = metadata_file.read(directory)
    return ModelOrigin(
        directory,
        settings,
        (metadata.tracking.experiment if metadata.tracking else None) or default_experiment(),
        index=metadata.index,
        saver=SaverSettings(metadata.max_to_keep, dict(metadata.saver_args)),
        recorded_run=metadata.tracking,
        model_fn=model_fn,
        params=dict(params or {}),
        metadata=metadata,
    )


def _new_model_dir(model_dir: PathLike | None) -> tuple[Path, tempfile.TemporaryDirectory | None, WriterLock]:
    """The new model's directory, with its writer lock taken (a new model writes at once)."""
    if model_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix="elistimator-")
        writer = WriterLock(Path(temporary.name))
        writer.acquire()
        return Path(temporary.name), temporary, writer
    path = _checked_path(model_dir, "model_dir")
    if path.exists() and not path.is_dir():
        raise ModelDirectoryError(f"model_dir {str(path)!r} exists and is not a directory")
    writer = WriterLock(path)
    if path.is_dir():
        writer.acquire()  # a directory another Elistimator writes is busy, whatever it holds
    try:
        _require_no_model(ModelDirectory(path))
    except BaseException:
        writer.release()
        raise
    path.mkdir(parents=True, exist_ok=True)
    writer.acquire()
    return path, None, writer


def _require_no_model(directory: ModelDirectory) -> None:
    """Refuse a directory holding another model's checkpoints: it would mix two histories."""
    if not metadata_file.exists(directory):
        return
    path = directory.path
    try:
        steps = metadata_file.read(directory).index.steps()
    except ModelDirectoryError as error:
        raise ModelDirectoryError(
            f"model_dir {str(path)!r} holds an unreadable Elistimator model ({error}); use another directory"
        ) from None
    if steps:
        raise ModelDirectoryError(
            f"model_dir {str(path)!r} already holds an Elistimator model with "
            f"checkpoints at steps {steps}; continue it with "
            f"Elistimator.from_disk({str(path)!r}) or use an empty directory"
        )


def _not_a_uri(source: Any) -> Any:
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]*):/", source) if isinstance(source, str) else None
    if scheme and len(scheme.group(1)) > 1:  # not a Windows drive letter
        raise InvalidValueError(
            f"{source!r}: from_disk does not read {scheme.group(1)}:/ sources; it takes a local model "
            "directory, runs:/<run_id>, models:/<name>/<version> or models:/<name>@<alias>"
        )
    return source


def _checked_path(value: Any, name: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidTypeError(f"{name} must be a str or pathlib.Path, got {type(value).__name__}")
    return Path(value).expanduser().absolute()


def load(source: PathLike | str, checkpoint: Selection, metric: str, mode: str, settings: Settings) -> ModelOrigin:
    """Find the model ``source`` names and the checkpoint to restore (see ``Elistimator.from_disk``);
    a remote one's graph is checked against the op allow-list unless ``settings.trust_store``."""
    checkpoint, mode = checked_selection(checkpoint), checked_mode(mode)
    temporary = None
    if is_remote_source(source):
        from .tracking.resolve import resolve_source  # imports mlflow: only for remote sources

        store = settings.tracking if isinstance(settings.tracking, str) else None
        cached = resolve_source(str(source), checkpoint, metric, mode, settings.cache_dir, store)
        temporary = tempfile.TemporaryDirectory(prefix="elistimator-")  # train on a copy, never the cache
        link_tree(cached, Path(temporary.name))
        path, checkpoint = Path(temporary.name), "latest"
    else:
        path = _checked_path(_not_a_uri(source), "model_dir")
    try:
        directory = ModelDirectory(path)
        metadata = metadata_file.read(directory)
        if temporary is not None:
            metadata.tracking = None  # a download never says where to track: the caller does
        if not metadata.index.steps():
            raise CheckpointNotFoundError(f"{str(path)!r} has no checkpoint: call save_ckpt() before loading it")
        step = select_step(metadata.index, checkpoint, metric, mode)
    except BaseException:
        if temporary is not None:
            temporary.cleanup()
        raise
    return ModelOrigin(
        directory,
        settings,
        (metadata.tracking.experiment if metadata.tracking else None) or path.name,
        index=metadata.index,
        saver=SaverSettings(metadata.max_to_keep, dict(metadata.saver_args)),
        recorded_run=metadata.tracking,
        metadata=metadata,
        step=step,
        temporary=temporary,
        verified=temporary is not None,
        untrusted_source=str(source) if temporary is not None and not settings.trust_store else None,
    )
