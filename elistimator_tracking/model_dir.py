"""The model directory's files on local disk: checkpoint files, checksums, atomic writes.

What the files mean (``elistimator.json``) is ``metadata.py``'s business; this module
only knows where files are, writes them atomically and checks them against checksums.
"""

from __future__ import annotations

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


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, whole."""
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


def refuse_link(root: Path, path: Path) -> None:
    """Raise ``ModelDirectoryError`` if ``path`` or a folder between the model directory ``root`` and
    it is a symbolic link: what the package writes, reads or removes in a model directory is never
    reached through a link (which could lead outside it)."""
    relative = path.relative_to(root)
    current = root
    for part in relative.parts:
        current = current / part
        if current.is_symlink():
            raise ModelDirectoryError(
                f"{current} is a symbolic link ({os.readlink(current)}); the model directory "
                f"{root} must hold real files and folders there: remove the link"
            )


def remove_tree(root: Path, path: Path) -> None:
    """Remove the folder ``path`` inside the model directory ``root`` (nothing if it is gone) without
    following links: a link in it is removed, never what it points at; a link on the way is refused."""
    refuse_link(root, path)
    if path.exists():
        shutil.rmtree(path)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def link_or_copy(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def link_tree(source: Path, destination: Path) -> None:
    """Mirror the files under ``source`` into ``destination`` with ``link_or_copy``."""
    for file in source.rglob("*"):
        if file.is_file():
            link_or_copy(file, destination / file.relative_to(source))


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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

    # -- checkpoint files -------------------------------------------------------------

    def checkpoint_prefix(self, step: int) -> str:
        return f"{CHECKPOINT_DIR}/model-{step}"

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
        target.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        source = self.resolve(prefix).parent
        for name in files:
            link_or_copy(source / name, target.checkpoint_dir / name)
        target.write_checkpoint_state([prefix])

    def write_checkpoint_state(self, prefixes: Iterable[str]) -> None:
        """The ``checkpoint`` file TensorFlow tools read (``tf.train.latest_checkpoint``)."""
        names = [Path(p).name for p in prefixes]
        if not names:
            (self.checkpoint_dir / "checkpoint").unlink(missing_ok=True)
            return
        lines = [f'model_checkpoint_path: "{names[-1]}"'] + [f'all_model_checkpoint_paths: "{n}"' for n in names]
        write_text_atomic(self.checkpoint_dir / "checkpoint", "\n".join(lines) + "\n")
