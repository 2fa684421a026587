"""The download cache of remote checkpoints: complete, verified copies or nothing.

A download goes to a temporary folder beside its place in the cache; it is checked (no file outside
it, the JSON valid, every file's sha256 as recorded at save time and, given, as the tracking store
recorded) and only then moved into place, so a second request reuses it. A failed download is one
line naming its cause. ``resolve.py`` says what to download; this module fetches and keeps it.
"""

from __future__ import annotations

import contextvars
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException

from .. import metadata as metadata_file
from ..errors import ModelDirectoryError, TrackingError
from ..model_dir import ModelDirectory
from .http_limits import bounded, quiet
from .store_uri import StoreUri

CACHE_ENV = "ELISTIMATOR_CACHE_DIR"


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "elistimator_tracking" / "downloads")


def download(artifact_uri: str, destination: Path, store: StoreUri) -> Path:
    """The files at ``artifact_uri`` (a folder) of ``store`` downloaded into ``destination`` (returned).
    The repository's download threads run in this
    call's context, so what the package does to its own requests (``http_limits``, the credentials of
    ``store_uri``) holds on them too, and on no request of the user's."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repository = get_artifact_repository(artifact_uri, tracking_uri=store.client_uri)
    repository.thread_pool = _InContext(repository.thread_pool)
    return Path(repository.download_artifacts("", dst_path=str(destination)))


class _InContext:
    """An executor that runs each task in a copy of the submitting context (MLflow's repository pools
    run tasks on their own threads, which would not see it)."""

    def __init__(self, pool: Any):
        self._pool = pool

    def submit(self, function: Callable, *args: Any, **kwargs: Any) -> Any:
        return self._pool.submit(contextvars.copy_context().run, function, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


def cache_root(cache_dir: Path | None, tracking_uri: str) -> Path:
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return root.absolute() / hashlib.sha256(tracking_uri.encode("utf-8")).hexdigest()[:12]


def cached(
    target: Path, fetch: Callable[[Path], str], name: str, label: str, checksums: dict[str, str] | None = None
) -> Path:
    """``target`` if a complete, verified copy is there; else download with ``fetch(folder) -> model dir``,
    verify, and move into place. Nothing stays behind when anything fails; a failed download is one
    line naming the cause (``download_failure``). ``checksums``: what the tracking store's database
    recorded for the checkpoint's files; the files must match them too, not only the checksums that
    travel beside them in the artifact store."""
    if target.is_dir():
        try:
            _verified(target, checksums)
            return target
        except ModelDirectoryError:
            shutil.rmtree(target, ignore_errors=True)  # damaged since: fetch it again
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    except OSError as error:
        raise download_failure(error, label, target.parent) from None
    try:
        try:
            with bounded(), quiet():  # a progress bar per checkpoint download is not news
                downloaded = Path(fetch(work))
        except (MlflowException, OSError) as error:
            raise download_failure(error, label, target.parent) from None
        require_inside(work, downloaded)
        _verified(downloaded, checksums)  # moves into the cache as is
        if target.exists():  # left over, or another process completed the same download meanwhile
            _verified(target, checksums)
        else:
            os.replace(downloaded, target)
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _verified(model_dir: Path, checksums: dict[str, str] | None) -> None:
    """Check a one-checkpoint model directory's files against its own checksums and, given, against
    the ones the tracking store recorded."""
    metadata = metadata_file.read_verified(ModelDirectory(model_dir, cached=True))
    if checksums is not None:
        files = [record.files for record in metadata.index.records.values()]
        if files != [checksums]:
            raise ModelDirectoryError(
                f"the checkpoint in {model_dir} is not the one the tracking store recorded: its "
                "files' sha256 differ from the store's record (changed in the artifact store?); "
                "refusing it"
            )


_FAILED_FILE = re.compile(r"^##### File (.+?) #####\n(.*)$", re.MULTILINE)
_REFUSAL = re.compile(r"Response text: (\{.*\})")


def download_failure(error: Exception, label: str, cache: Path) -> Exception:
    """One line for a failed download of ``label`` into ``cache``: a full disk, a file the store refused
    to send (MLflow says only "please ensure that the path is correct" for both), or the first file's
    error; an error that is none of these comes back as it is."""
    text = error.message if isinstance(error, MlflowException) else str(error)
    if (isinstance(error, OSError) and error.errno == errno.ENOSPC) or "No space left on device" in text:
        return TrackingError(
            f"the disk of the download cache is full (no space left on device, writing {cache}) while "
            f"downloading {label}; free space there, or give from_disk cache_dir= (or ${CACHE_ENV}) on a disk with room"
        )
    failed = _FAILED_FILE.findall(text)
    if not failed:
        return error
    path, reason = failed[0]
    refusal = _REFUSAL.search(reason)
    if refusal:
        try:
            reason = json.loads(refusal.group(1)).get("message") or reason
        except ValueError:
            pass
        return TrackingError(f"the store refused to send {path} of {label}: {reason}")
    return TrackingError(f"downloading {label} failed at {path}: {reason}")


def require_inside(root: Path, model_dir: Path) -> None:
    """Refuse a download holding a symlink or a path that resolves outside ``root``."""
    real_root = root.resolve()
    for path in [model_dir, *model_dir.rglob("*")]:
        if path.is_symlink() or (real_root not in path.resolve().parents and path.resolve() != real_root):
            raise ModelDirectoryError(
                f"the download holds {path.name!r}, which points outside the download directory; refusing it"
            )
