"""The Elistimator's checkpoint methods: load (``from_disk``), save, restore, register, and the history.

A base class of the facade (``elistimator.py``), split off by concern: these methods delegate to
the checkpoint manager (``checkpoint_manager.py``), the commits (``commits.py``) and the run
(``tracking/listener.py``) that the facade assembles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .checkpoints import Selection
from .criterion import Criterion
from .errors import UsageError
from .loading import load
from .metadata import Metadata
from .properties import ElistimatorProperties
from .settings import PathLike, Settings

if TYPE_CHECKING:
    from .checkpoint_manager import CheckpointManager
    from .checkpoints import KeepBest
    from .commits import Commits
    from .listeners import Listener, Listeners
    from .loading import ModelOrigin
    from .settings import SaverSettings
    from .tracking.base import Tracker
    from .writer_lock import WriterLock


Self = TypeVar("Self", bound="CheckpointMethods")


class CheckpointMethods(ElistimatorProperties):
    """What an Elistimator does with checkpoints (the parts are the facade's)."""

    _checkpoints: CheckpointManager
    _commits: Commits
    _listeners: Listeners
    _saver: SaverSettings
    _writer: WriterLock

    @classmethod
    def _from_origin(cls: type[Self], origin: ModelOrigin) -> Self:  # the facade's: an Elistimator of ``origin``
        raise NotImplementedError

    @classmethod
    def from_disk(
        cls: type[Self],
        model_dir: PathLike,
        checkpoint: Selection = "latest",
        session_args: Mapping[str, Any] | None = None,
        *,
        metric: str = "loss",
        mode: str = "auto",
        verbose: bool = True,
        summary_every_n_steps: int = 10,
        tracking: bool | str | Tracker = True,
        experiment: str | None = None,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        cache_dir: PathLike | None = None,
        system_metrics: bool = False,
        listeners: Sequence[Listener] | None = None,
        store_retention: KeepBest | None = None,
        trust_store: bool = False,
    ) -> Self:
        """Load a model without the model function: from a model directory, a run or the registry.

        The graph comes from the checkpoint's saved meta graph. ``predict`` and ``evaluate`` work at
        once; ``setup(...)`` continues training from the restored global step, keeping the checkpoint
        history (later checkpoints are dropped, with a warning, once training goes on from an older
        one), and resumes the MLflow run a local directory names (in the store it was tracked to).
        Remote checkpoints are downloaded to ``cache_dir``, verified against their checksums, and
        reused next time; their graph may hold only the ops models need (``graph_safety.py``). The
        other options (verbose, summary_every_n_steps, tracking, experiment, run_name, tags,
        cache_dir, system_metrics, listeners, store_retention, trust_store) are ``Elistimator``'s,
        declared in ``settings.Settings``.

        Args:
            model_dir: a local model directory, ``runs:/<run_id>`` (or a unique prefix of the id),
                ``models:/<name>/<version>``, ``models:/<name>@<alias>`` or ``models:/m-<logged model id>``.
            checkpoint: ``'latest'``, ``'best'`` (by ``metric`` and ``mode``) or a global step.
            session_args: keyword arguments for ``tf.Session`` (``target``, ``config``).
            metric: the validation metric ``'best'`` selects by.
            mode: ``'min'``, ``'max'`` or ``'auto'`` (highest for accuracy-like names, lowest otherwise).

        Returns:
            An Elistimator with that checkpoint restored.

        Raises:
            ModelDirectoryError: a local directory that is missing, not an Elistimator's, corrupt or
                damaged (checksums), or holding links that leave it.
            CheckpointNotFoundError: no such step, run, version or alias; no checkpoint; no checkpoint
                with ``metric``; a checkpoint the store's retention deleted.
            UnsafeModelError: a remote checkpoint's graph holds an op a model does not need
                (``trust_store=True`` loads it anyway).
            InvalidValueError: ``checkpoint``, ``mode`` or an option is refused.
            StoreNotFoundError: a local tracking store that does not exist.
            TrackingError: the store could not be read (it does not answer, it refused).
        """
        settings = Settings.checked(**Settings.given(locals()))
        return cls._from_origin(load(model_dir, checkpoint, metric, mode, settings))

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
        """Save a checkpoint at the current global step, and log it to the run as an MLflow model.

        Validation metrics of the same global step attach to it, whichever comes first. Beyond
        ``max_to_keep`` (``train_saver_args``, default 5) the oldest checkpoints' files are removed;
        their entries stay in ``checkpoints`` with ``local=False``, and the run still holds them.

        Returns:
            The checkpoint's path prefix, e.g. ``'<model_dir>/checkpoints/model-143'``.

        Raises:
            UsageError: without a model (``setup()`` or ``from_disk``), or after ``close()``.
            ModelDirectoryBusy: another writer holds the model directory.
            ModelDirectoryChanged: another writer committed to it since it was loaded.
            ModelDirectoryError: a link where the checkpoint's files go.
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
        """Restore the checkpoint at ``path_prefix`` (absolute, or relative to the model directory).

        Args:
            path_prefix: a checkpoint's ``'file'`` in ``checkpoints``, e.g. ``'checkpoints/model-143'``.

        Returns:
            This Elistimator; training goes on from the restored global step.

        Raises:
            UsageError: without a model, or after ``close()``.
            CheckpointNotFoundError: no checkpoint of this model directory has that prefix.
            ModelDirectoryError: its files do not match the checksums taken when it was saved.
        """
        self._checkpoints.restore(self._require_model("restore_ckpt()"), path_prefix)
        return self

    def restore_latest_ckpt(self: Self) -> Self:
        """Restore the checkpoint with the greatest global step (from the run when pruned locally).

        Raises:
            UsageError: without a model, or after ``close()``.
            CheckpointNotFoundError: there is no checkpoint.
        """
        return self._restore("latest")

    def restore_best_ckpt(self: Self, metric: str = "loss", mode: str = "auto") -> Self:
        """Restore the checkpoint whose validation ``metric`` is best (from the run when pruned locally).

        Checkpoints without that metric never win, NaN never wins; ties go to the later step.

        Args:
            metric: a name ``validate()`` returns (``'loss'``, ``'accuracy'``, ...).
            mode: ``'min'``, ``'max'``, or ``'auto'``: highest for accuracy-like names (``acc`` in the
                name, ``auc``, ``precision``, ``recall``, ``f1``, ...), lowest otherwise.

        Returns:
            This Elistimator; training goes on from the restored global step.

        Raises:
            UsageError: without a model, or after ``close()``.
            CheckpointNotFoundError: no checkpoint has a validation of ``metric``.
            InvalidValueError: ``mode`` is not one of the three.
        """
        return self._restore("best", metric, mode)

    def _restore(self: Self, checkpoint: Selection, metric: str = "loss", mode: str = "auto") -> Self:
        loops = self._require_model(f"restore_{checkpoint}_ckpt()")
        self._checkpoints.restore_step(loops, self._checkpoints.select(checkpoint, metric, mode))
        return self

    def register_best(
        self, name: str, metric: str = "loss", mode: str = "auto", alias: str | None = "champion", force: bool = False
    ) -> str:
        """Register the best checkpoint in the MLflow Model Registry as a new version of ``name``.

        The version's source is the checkpoint's logged model (no second copy), tagged with its step
        and validation metrics; it is an MLflow Model too (``mlflow.pyfunc.load_model``, ``mlflow
        models serve``). ``alias`` moves to it only when it beats the version the alias points at on
        ``metric`` in ``mode`` (a tie keeps the current one); an ``AliasKeptWarning`` says when it stays.

        Args:
            name: the registered model's name.
            metric: the validation metric that picks the best checkpoint, and judges the alias.
            mode: ``'min'``, ``'max'`` or ``'auto'`` (highest for accuracy-like names).
            alias: the alias that moves only to a better version (None: no alias).
            force: move the alias whatever the metric says.

        Returns:
            The new version's number, as a string.

        Raises:
            UsageError: without a model, or after ``close()``.
            TrackingError: without tracking, or before the run exists in the store.
            CheckpointNotFoundError: no checkpoint has a validation of ``metric``.
            InvalidValueError: a name or alias the registry refuses, or an unknown ``mode``.
        """
        self._require_model("register_best()")
        criterion = Criterion(metric, mode)
        step = self._checkpoints.select("best", metric, mode)
        return self._run.register(self._checkpoints.saved(step, self._metadata()), name, alias, criterion, force)

    def log_artifacts(self, directory: PathLike, artifact_path: str) -> None:
        """Send the files of ``directory`` (e.g. an exported SavedModel) to the run under ``artifact_path``.

        Raises:
            UsageError: without a model, or after ``close()``.
        """
        self._require_model("log_artifacts()")
        self._run.send_directory(Path(directory), artifact_path)

    def _metadata(self) -> Metadata:
        """What ``elistimator.json`` holds now; also while ``close()`` writes it (not ``_require_model``:
        that refuses a closed Elistimator, and close() records the run after marking it closed)."""
        if self._loops is None:
            raise UsageError("writing elistimator.json needs a model: call setup(train_input_fn, ...) first")
        return Metadata(
            graph=self._loops.model.to_names(),
            index=self._checkpoints.index,
            global_step=self.global_step,
            max_to_keep=self._saver.max_to_keep,
            saver_args=self._saver.args,
            tracking=self._run.record,
        )
