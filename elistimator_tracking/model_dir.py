"""The model directory's files on local disk: checkpoint files, checksums, atomic writes.

What the files mean (``elistimator.json``) is ``metadata.py``'s business; this module
only knows where files are, writes them atomically and checks them against checksums.

Nothing is written, truncated or removed through a symbolic link inside a model directory
(``refuse_links``): a link planted there could point at the user's files. Every write goes
through ``write_text_atomic`` (a new file moved into place, so a hard link to the old one is
never written through either), ``open_for_write`` (``O_NOFOLLOW``) or the checks before
TensorFlow writes (``ModelDirectory.writable``); removal through ``remove_tree``. The model
directory itself may be a link: the user named it. The checks guard against links planted
before a call, not against another process swapping files during one (who can do that can
write the directory anyway).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import ModelDirectoryError

CHECKPOINT_DIR = "checkpoints"
METADATA_TEMPORARY = ".elistimator.json.*.tmp"  # what a crash inside write_json_atomic can leave


def refuse_links(root: Path, path: Path) -> Path:
    """``path``, once neither it nor a folder between ``root`` and it is a symbolic link; else
    ``ModelDirectoryError`` naming the link. ``path`` must lie inside ``root`` (lexically); parts
    that do not exist yet are fine."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        raise ModelDirectoryError(f"{path} is outside the model directory {root}") from None
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise ModelDirectoryError(_link_message(current, root))
    return path


def _link_message(link: Path, root: Path | None) -> str:
    where = f" inside the model directory {root}" if root is not None else ""
    try:
        target = f" (to {os.readlink(link)})"
    except OSError:
        target = ""
    return (
        f"{link} is a symbolic link{target}{where}; Elistimator writes and removes nothing through "
        "links in a model directory: replace it with a real file or folder"
    )


def open_for_write(root: Path, path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC) -> int:
    """A file descriptor of ``path`` inside ``root``, opened with ``flags`` without following a link
    (``O_NOFOLLOW``, close-on-exec); ``ModelDirectoryError`` naming ``path`` when it is a link or a
    directory or cannot be opened for writing."""
    refuse_links(root, path.parent)
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ModelDirectoryError(_link_message(path, root)) from None
        if error.errno == errno.EISDIR:
            raise ModelDirectoryError(f"{path} is a directory; it must be a file (remove the directory)") from None
        if error.errno == errno.ENOENT and not root.is_dir():
            raise ModelDirectoryError(f"model directory {str(root)!r} does not exist") from None
        raise ModelDirectoryError(f"{path} cannot be written ({error.strerror})") from None


def remove_tree(root: Path, path: Path) -> None:
    """Delete the folder (or file) ``path`` inside ``root``, never through a link: a link at ``path``
    or above it is refused (``refuse_links``); links inside it are removed, not followed."""
    refuse_links(root, path)
    if path.is_dir():
        shutil.rmtree(path)  # fd-based: links inside are unlinked, never followed
    elif path.exists():
        path.unlink()


def write_text_atomic(path: Path, text: str, root: Path | None = None) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, whole. A link at
    ``path`` (or, given the model directory ``root``, anywhere between it and ``path``) is refused."""
    if root is not None:
        refuse_links(root, path)
    elif path.is_symlink():
        raise ModelDirectoryError(_link_message(path, None))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def write_json_atomic(path: Path, data: Any, root: Path | None = None) -> None:
    write_text_atomic(path, json.dumps(data, indent=1) + "\n", root)


# os.link fails with these where the file system has no hard links (or none across devices): copy
_NO_HARD_LINKS = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}


def link_or_copy(source: Path, destination: Path) -> None:
    """``destination`` becomes a hard link of ``source`` (a copy where the file system has none).
    What was at ``destination`` is replaced, never written through; a link at either end is refused."""
    for end in (source, destination):
        if end.is_symlink():
            raise ModelDirectoryError(_link_message(end, None))
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.exists():
        if os.path.samefile(source, destination):
            return
        destination.unlink()
    try:
        os.link(source, destination)
    except OSError as error:
        if error.errno not in _NO_HARD_LINKS:
            raise
        fd, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
        os.close(fd)
        try:
            shutil.copy2(source, temporary)
            os.replace(temporary, destination)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def link_tree(source: Path, destination: Path) -> None:
    """Mirror the files under ``source`` into ``destination`` with ``link_or_copy``; a symbolic link
    under ``source`` is refused (sending what it points at would send a file from outside)."""
    for file in sorted(source.rglob("*")):
        if file.is_symlink():
            raise ModelDirectoryError(_link_message(file, source))
        if file.is_file():
            link_or_copy(file, destination / file.relative_to(source))


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def require_directory(path: Path) -> None:
    """``ModelDirectoryError`` unless ``path`` is a directory: it does not exist, or it is a file."""
    if not path.exists():
        raise ModelDirectoryError(f"model directory {str(path)!r} does not exist")
    if not path.is_dir():
        raise ModelDirectoryError(f"{str(path)!r} is a file, not a model directory")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Download-cache files this process has hashed: digest by (device, inode, size, mtime). Every file
# is still hashed once per process before a graph is imported from it; loading the same cache
# entry again costs a stat. The cache is written only whole (a verified download moved into
# place) and never in place, so a changed file shows a new inode, size or mtime; slipping past
# needs write access to the cache plus resetting the mtime on purpose, and such a writer could
# as well swap a file between any check and TensorFlow reading it. (Not ctime: hard-linking a
# cached file into the copy a loaded model works in changes it.)
_CACHE_DIGESTS: dict[tuple[int, int, int, int], str] = {}


def _remembered_sha256(path: Path) -> str:
    """``sha256_of(path)``, remembered for this process while the file's stat is unchanged."""
    stat = path.stat()
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _CACHE_DIGESTS:
        _CACHE_DIGESTS[key] = sha256_of(path)
    return _CACHE_DIGESTS[key]


class ModelDirectory:
    """Paths, metadata and checkpoint files of one model directory.

    ``cached``: an entry of the download cache, whose verified digests this process remembers
    (see ``_CACHE_DIGESTS``); a model directory's own files are hashed on every check.
    """

    def __init__(self, path: Path, cached: bool = False):
        self.path = path
        self._digest = _remembered_sha256 if cached else sha256_of

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    def resolve(self, relative: str) -> Path:
        """``relative`` inside the model directory; raise if it points outside."""
        if os.path.isabs(relative):
            raise ModelDirectoryError(
                f"{self.path} holds an absolute path {relative!r}; paths must be relative to the model directory"
            )
        root = self.path.resolve()
        resolved = (root / relative).resolve()
        if resolved != root and root not in resolved.parents:
            raise ModelDirectoryError(f"{self.path} holds a path {relative!r} that points outside the model directory")
        return resolved

    def writable(self, relative: str) -> Path:
        """``relative`` inside the model directory, where the package is about to write: refused
        (``ModelDirectoryError``) when it or a folder on the way is a symbolic link."""
        return refuse_links(self.path, self.path / relative)

    def write_json(self, relative: str, data: Any) -> None:
        write_json_atomic(self.path / relative, data, root=self.path)

    # -- checkpoint files -------------------------------------------------------------

    def checkpoint_prefix(self, step: int) -> str:
        return f"{CHECKPOINT_DIR}/model-{step}"

    def checkpoint_target(self, prefix: str) -> Path:
        """Where TensorFlow's saver writes the checkpoint ``prefix``, after refusing links on the way there
        and anywhere in the checkpoint folder (the new files, ``checkpoint``, files pruning removes), so
        a save is refused before anything is written or committed."""
        target = self.writable(prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        for existing in target.parent.iterdir():  # its files, TensorFlow's state file, what pruning removes
            refuse_links(self.path, existing)
        return target

    def checkpoint_files(self, prefix: str) -> list[Path]:
        """The files a checkpoint with this relative prefix consists of (index, data shards, meta)."""
        path = self.resolve(prefix)
        return sorted(p for p in path.parent.glob(path.name + ".*") if p.is_file())

    def checksums(self, prefix: str) -> dict[str, str]:
        files = self.checkpoint_files(prefix)
        for file in files:
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
        return {file.name: sha256_of(file) for file in files}

    def verify(self, prefix: str, checksums: Mapping[str, str]) -> list[str]:
        """Problems with the checkpoint's files on disk (missing, changed); empty when intact. A file
        that links outside the model directory raises ``ModelDirectoryError``."""
        folder = Path(prefix).parent
        problems = []
        for name, expected in checksums.items():
            file = self.resolve((folder / name).as_posix())
            if not file.is_file():
                problems.append(f"{name} is missing")
            elif self._digest(file) != expected:
                problems.append(f"{name} does not match its checksum")
        if not checksums:
            problems.append("no files were recorded")
        return problems

    def remove_unreferenced(self, keep: Iterable[str]) -> None:
        """Delete checkpoint files no prefix in ``keep`` owns: pruned ones, and those a crash
        left mid-save (never committed to the metadata); and stale temporary files."""
        kept = {Path(prefix).name for prefix in keep}
        self.writable(CHECKPOINT_DIR)
        for file in self.checkpoint_dir.glob("model-*"):
            stem = file.name.split(".", 1)[0]
            if re.fullmatch(r"model-\d+", stem) and stem not in kept and file.is_file():
                file.unlink(missing_ok=True)
        for temporary in [*self.path.glob(METADATA_TEMPORARY), *self.checkpoint_dir.glob(".checkpoint.*.tmp")]:
            temporary.unlink(missing_ok=True)

    def export_checkpoint(self, prefix: str, files: Iterable[str], destination: Path) -> None:
        """Put this checkpoint's files (and TensorFlow's ``checkpoint`` file) into the model directory
        ``destination``; its metadata is the caller's to write.

        Files are hard-linked (no copy, and they outlive pruning of the originals), copied
        where the file system has no hard links.
        """
        target = ModelDirectory(destination)
        target.writable(CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
        source = self.resolve(prefix).parent
        for name in files:
            link_or_copy(source / name, target.checkpoint_dir / name)
        target.write_checkpoint_state([prefix])

    def write_checkpoint_state(self, prefixes: Iterable[str]) -> None:
        """The ``checkpoint`` file TensorFlow tools read (``tf.train.latest_checkpoint``)."""
        names = [Path(p).name for p in prefixes]
        state = self.writable(f"{CHECKPOINT_DIR}/checkpoint")
        if not names:
            state.unlink(missing_ok=True)
            return
        lines = [f'model_checkpoint_path: "{names[-1]}"'] + [f'all_model_checkpoint_paths: "{n}"' for n in names]
        write_text_atomic(state, "\n".join(lines) + "\n", root=self.path)
