"""The Elistimator's checkpoint methods: save, restore, register, and the checkpoint history.

A base class of the facade (``elistimator.py``), split off by concern: these methods delegate to
the checkpoint manager (``checkpoint_manager.py``), the commits (``commits.py``) and the run
(``tracking/listener.py``) that the facade assembles.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .checkpoints import Selection
from .criterion import Criterion
from .metadata import Metadata
from .settings import PathLike

if TYPE_CHECKING:
    from .checkpoint_manager import CheckpointManager
    from .commits import Commits
    from .listeners import Listeners
    from .loops import Loops
    from .settings import SaverSettings
    from .tracking.listener import TrackingListener
    from .writer_lock import WriterLock


Self = TypeVar("Self", bound="CheckpointMethods")


class CheckpointMethods:
    """What an Elistimator does with checkpoints (the parts are the facade's)."""

    _checkpoints: CheckpointManager
    _commits: Commits
    _listeners: Listeners
    _loops: Loops | None
    _run: TrackingListener
    _saver: SaverSettings
    _writer: WriterLock

    @property
    def global_step(self) -> int:  # the facade's
        raise NotImplementedError

    def _require_model(self, what: str) -> Loops:  # the facade's: its loops, or a UsageError naming ``what``
        raise NotImplementedError

    def _take_stop(self) -> None:  # the facade's: keep a stop a listener asked for
        raise NotImplementedError

    @property
    def checkpoints(self) -> dict[int, dict[str, Any]]:
        """``{global_step: {'file': path_prefix, 'metrics': {...}, 'local': bool, 'stored': bool}}``.

        ``local`` is False once ``max_to_keep`` pruned the files; the entry and its metrics stay.
        ``stored`` is False once the tracking store no longer holds it (``store_retention``
        retired it, or ``sync`` found it gone everywhere).
        """
        return self._checkpoints.describe()

    def save_ckpt(self) -> str:
        """Save a checkpoint at the current global step; return its path prefix.

        Validation metrics of the same global step attach to it, whichever comes first.
        Beyond ``max_to_keep`` (``train_saver_args``, default 5) the oldest checkpoints'
        files are removed; their entries stay in ``checkpoints`` with ``local=False``.
        """
        loops = self._require_model("save_ckpt()")
        self._commits.acquire()
        step = loops.global_step
        self._checkpoints.save(
            loops,
            step,
            uncommit=self._commits.write,
            commit=lambda: self._commits.commit(
                "save", lambda: self._listeners.on_checkpoint(self._checkpoints.saved(step, self._metadata()))
            ),
        )
        self._checkpoints.remove_unreferenced_files()  # after listeners linked what they send
        self._take_stop()
        return self._checkpoints.file_of(step)

    def restore_ckpt(self: Self, path_prefix: PathLike) -> Self:
        """Restore the checkpoint at ``path_prefix`` (absolute, or relative to the model directory)."""
        self._checkpoints.restore(self._require_model("restore_ckpt()"), path_prefix)
        return self

    def restore_latest_ckpt(self: Self) -> Self:
        """Restore the checkpoint with the greatest global step."""
        return self._restore("latest")

    def restore_best_ckpt(self: Self, metric: str = "loss", mode: str = "auto") -> Self:
        """Restore the checkpoint whose validation ``metric`` is best: lowest (``mode='min'``), highest
        (``'max'``), or ``'auto'`` (highest for accuracy-like names, lowest otherwise).

        Checkpoints without that metric never win; ties go to the later step.
        """
        return self._restore("best", metric, mode)

    def _restore(self: Self, checkpoint: Selection, metric: str = "loss", mode: str = "auto") -> Self:
        loops = self._require_model(f"restore_{checkpoint}_ckpt()")
        self._checkpoints.restore_step(loops, self._checkpoints.select(checkpoint, metric, mode))
        return self

    def register_best(
        self, name: str, metric: str = "loss", mode: str = "auto", alias: str | None = "champion", force: bool = False
    ) -> str:
        """Register the best checkpoint (by validation ``metric`` and ``mode``) in the MLflow Model
        Registry as a new version of ``name`` (from the checkpoint's logged model), tagged with its
        step and metrics. ``alias`` moves to it only when it beats the version the alias points at
        on ``metric`` in ``mode`` (a tie keeps the current one; ``force=True`` moves it anyway); an
        ``AliasKeptWarning`` says when it stays. The version is an MLflow Model too
        (``mlflow.pyfunc.load_model``, ``mlflow models serve``). Returns the version number.
        """
        self._require_model("register_best()")
        criterion = Criterion(metric, mode)
        step = self._checkpoints.select("best", metric, mode)
        return self._run.register(self._checkpoints.saved(step, self._metadata()), name, alias, criterion, force)

    def log_artifacts(self, directory: PathLike, artifact_path: str) -> None:
        """Send the files of ``directory`` (e.g. an exported SavedModel) to the run under ``artifact_path``."""
        self._require_model("log_artifacts()")
        self._run.send_directory(Path(directory), artifact_path)

    def _metadata(self) -> Metadata:
        return Metadata(
            graph=self._require_model("writing elistimator.json").model.to_names(),
            index=self._checkpoints.index,
            global_step=self.global_step,
            max_to_keep=self._saver.max_to_keep,
            saver_args=self._saver.args,
            tracking=self._run.record,
        )
