"""Checkpoints beyond the local disk: in a run's artifacts, or in the Model Registry.

``runs:/<run_id>``, ``models:/<name>/<version>`` and ``models:/<name>@<alias>`` resolve
to a local one-checkpoint model directory in a download cache. A download goes to a
temporary folder first; it is checked (no file outside it, the JSON valid, every
file's sha256 as recorded at save time) and only then moved into place, so the cache
holds complete, verified checkpoints or nothing, and a second request reuses it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..checkpoints import CheckpointIndex, CheckpointRecord
from ..model_dir import ModelDirectory, ModelDirectoryError
from .registry import MODEL_DIR_ARTIFACT

CACHE_ENV = "ELISTIMATOR_CACHE_DIR"
STEP_DIR = re.compile(r"step-(\d+)")
SOURCE = re.compile(r"^(?:runs:/(?P<run>[0-9a-zA-Z_-]+)/?|models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))/?)$")


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "elistimator_tracking" / "downloads")


def parse_source(source: str) -> Dict[str, Optional[str]]:
    match = SOURCE.match(source)
    if not match:
        raise ValueError(f"{source!r} is not a model source: expected a model directory, runs:/<run_id>, "
                         "models:/<name>/<version> or models:/<name>@<alias>")
    return match.groupdict()


class RunCheckpoints:
    """The checkpoints one run logged (``checkpoints/step-<N>/``) and their validation metrics."""

    def __init__(self, run_id: str, tracking_uri: Optional[str] = None):
        self.tracking_uri = tracking_uri or mlflow.get_tracking_uri()
        self.client = MlflowClient(self.tracking_uri)
        self.run_id = run_id
        self._steps: Optional[List[int]] = None
        try:
            self.run = self.client.get_run(run_id)
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise LookupError(f"there is no run {run_id!r} in {self.tracking_uri}") from None
            raise

    def steps(self) -> List[int]:
        """The logged checkpoint steps (listed once per instance)."""
        if self._steps is None:
            steps = []
            for info in self.client.list_artifacts(self.run_id, "checkpoints"):
                match = STEP_DIR.fullmatch(Path(info.path).name)
                if info.is_dir and match:
                    steps.append(int(match.group(1)))
            self._steps = sorted(steps)
        return self._steps

    def index(self) -> CheckpointIndex:
        """Every logged checkpoint step, with the validation metrics the run holds at that step
        (the last value logged, should a step have been trained twice)."""
        steps = self.steps()
        if not steps:
            raise LookupError(f"run {self.run_id} in {self.tracking_uri} holds no Elistimator checkpoint "
                              "(no checkpoints/step-<N>/ artifacts)")
        validations: Dict[int, Dict[str, float]] = {}
        for key in self.run.data.metrics:
            if key.startswith("validation/"):
                for point in sorted(self.client.get_metric_history(self.run_id, key), key=lambda m: m.timestamp):
                    if point.step in steps:
                        validations.setdefault(point.step, {})[key[len("validation/"):]] = point.value
        records = [CheckpointRecord(step, f"checkpoints/model-{step}", local=False) for step in steps]
        return CheckpointIndex(records, validations)

    def download(self, step: int, cache_dir: Optional[Path] = None) -> Path:
        """The run's checkpoint at ``step`` as a verified local model directory (cached)."""
        if step not in self.steps():
            raise LookupError(f"run {self.run_id} logged no checkpoint at step {step}; it logged {self.steps()}")
        target = _cache_root(cache_dir, self.tracking_uri) / "runs" / self.run_id / f"step-{step}"
        return _cached(target, lambda where: self.client.download_artifacts(
            self.run_id, f"checkpoints/step-{step}", str(where)), f"step-{step}")


def download_model_version(source: str, cache_dir: Optional[Path] = None,
                           tracking_uri: Optional[str] = None) -> Tuple[Path, Dict[str, str]]:
    """``models:/<name>/<version>`` or ``models:/<name>@<alias>`` as a verified local model directory,
    and what it is (``{'name', 'version', 'run_id'}``)."""
    parts = parse_source(source)
    uri = tracking_uri or mlflow.get_tracking_uri()
    client = MlflowClient(uri)
    name = parts["name"]
    try:
        if parts["alias"]:
            version = client.get_model_version_by_alias(name, parts["alias"])
        else:
            version = client.get_model_version(name, parts["version"])
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            known = [m.name for m in client.search_registered_models(max_results=50)]
            raise LookupError(f"{source} is not in the Model Registry at {uri} ({error.message.splitlines()[0]}); "
                              f"registered models: {known or 'none'}") from None
        raise
    target = _cache_root(cache_dir, uri) / "models" / name / f"version-{version.version}"

    def fetch(where: Path) -> str:
        downloaded = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version.version}", dst_path=str(where), tracking_uri=uri, registry_uri=uri))
        inner = _model_dir_artifact(downloaded)
        if inner is None or not (downloaded / inner / "elistimator.json").is_file():
            raise ModelDirectoryError(f"{source} (version {version.version}) holds no Elistimator checkpoint "
                                      f"(no MLmodel with a {MODEL_DIR_ARTIFACT!r} artifact holding elistimator.json)")
        return str(downloaded / inner)

    path = _cached(target, fetch, "model_dir")
    return path, {"name": name, "version": version.version, "run_id": version.run_id}


def _model_dir_artifact(model: Path) -> Optional[str]:
    """Where an MLflow Model made by ``register_model_dir`` keeps the checkpoint (relative path)."""
    if not (model / "MLmodel").is_file():
        return None
    flavor = mlflow.models.Model.load(str(model)).flavors.get("python_function", {})
    entry = flavor.get("artifacts", {}).get(MODEL_DIR_ARTIFACT, {})
    return entry.get("path") if isinstance(entry, dict) else None


def _cache_root(cache_dir: Optional[Path], tracking_uri: str) -> Path:
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return root.absolute() / hashlib.sha256(tracking_uri.encode("utf-8")).hexdigest()[:12]


def _cached(target: Path, fetch, label: str) -> Path:
    """``target`` if a complete, verified copy is there; else download with ``fetch(folder) -> model dir``,
    verify, and move into place. Nothing stays behind when anything fails."""
    if target.is_dir():
        try:
            verify_model_dir(target)
            return target
        except ModelDirectoryError:
            shutil.rmtree(target, ignore_errors=True)  # damaged since: fetch it again
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{label}-", dir=target.parent))
    try:
        downloaded = Path(fetch(work))
        _require_inside(work, downloaded)
        verify_model_dir(downloaded)
        if target.exists():  # left over, or another process completed the same download meanwhile
            verify_model_dir(target)
        else:
            os.replace(downloaded, target)
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _require_inside(root: Path, model_dir: Path) -> None:
    real_root = root.resolve()
    for path in [model_dir, *model_dir.rglob("*")]:
        if path.is_symlink() or (real_root not in path.resolve().parents and path.resolve() != real_root):
            raise ModelDirectoryError(f"the download holds {path.name!r}, which points outside the download "
                                      "directory; refusing it")


def verify_model_dir(path: Path) -> Dict[str, object]:
    """A one-or-more-checkpoint model directory whose local files all match their checksums."""
    directory = ModelDirectory(path)
    metadata = directory.read_metadata()
    try:
        index = CheckpointIndex.from_json(metadata)
    except (ValueError, TypeError, KeyError) as error:
        raise ModelDirectoryError(f"{directory.metadata_path} has a malformed checkpoint index: {error}") from None
    for step in index.steps(local_only=True):
        record = index.records[step]
        problems = directory.verify(record.prefix, record.files)
        if problems:
            raise ModelDirectoryError(f"the checkpoint at step {step} in {path} failed verification: "
                                      + "; ".join(problems))
    return metadata


def resolve_source(source: Union[str, os.PathLike], checkpoint: Union[str, int], metric: str, mode: str,
                   cache_dir: Optional[Path], tracking_uri: Optional[str]) -> Tuple[Path, Union[str, int]]:
    """A remote source as a local model directory, and the checkpoint to load from it."""
    from ..checkpoints import best_step, latest_step
    parts = parse_source(str(source))
    if parts["run"]:
        run = RunCheckpoints(parts["run"], tracking_uri)
        index = run.index()
        if checkpoint == "latest":
            step = latest_step(index)
        elif checkpoint == "best":
            step = best_step(index, metric, mode)
        else:
            step = checkpoint
        return run.download(step, cache_dir), "latest"
    if checkpoint not in ("latest", "best"):
        raise ValueError(f"a registered version holds one checkpoint: checkpoint must be 'latest' or 'best' "
                         f"for {source}, got {checkpoint!r}")
    path, _ = download_model_version(str(source), cache_dir, tracking_uri)
    return path, "latest"
