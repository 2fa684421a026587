"""The suite's sandbox: every cache and store in a temporary folder, $HOME untouched; and the
README's defaults (download cache, tracking store) where the sandbox puts them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import SANDBOX, dataset_fn, tiny_model_fn, train_epochs, tree
from mlflow import MlflowClient

from elistimator_tracking import Elistimator

WORKLOAD = """
import sys
sys.path.insert(0, {tests!r})
import conftest  # the sandbox, as the suite sets it up
from conftest import blobs, dataset_fn, tiny_model_fn, train_epochs
from elistimator_tracking import Elistimator
from elistimator_tracking.cli import main
(x, y), (vx, vy) = blobs(40), blobs(16, seed=1)
with Elistimator(tiny_model_fn, "model", verbose=False) as est:   # default store, keras layers
    est.setup(dataset_fn(x, y), dataset_fn(vx, vy), train_saver_args={{"max_to_keep": 1}})
    train_epochs(est, 2)
    run_id = est.run_id
Elistimator.from_disk("runs:/" + run_id, checkpoint="best", verbose=False).close()   # default cache
Elistimator.from_disk("model", checkpoint=5, verbose=False).close()   # a pruned checkpoint, fetched
assert main(["download", "runs:/" + run_id, "downloaded"]) == 0
print(conftest.SANDBOX)
"""


def test_the_suite_keeps_home_untouched(tmp_path):
    """A tracked training, remote loads and the CLI, under the suite's sandbox, in a process whose
    $HOME is an empty folder we watch: it stays empty, and everything lands in the sandbox."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("ELISTIMATOR_CACHE_DIR", "MLFLOW_TRACKING_URI")}
    env.update(HOME=str(home), TMPDIR=str(tmp_path), PYTHONPATH=os.pathsep.join(sys.path))
    script = WORKLOAD.format(tests=str(Path(__file__).parent))
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sandbox = Path(done.stdout.split()[-1])
    assert tmp_path in sandbox.parents
    assert tree(home) == {}
    assert any(p.name == "step-5" for p in (sandbox / "cache").rglob("*"))  # the downloads
    assert (sandbox / "mlflow.db").is_file()
    assert {p.parts[0] for p in tree(work)} == {"model", "downloaded", "mlruns"}  # mlruns: artifacts, by the cwd


def test_caches_stores_and_home_point_into_the_sandbox():
    import mlflow

    from elistimator_tracking.tracking.download_cache import default_cache_dir

    assert SANDBOX in Path.home().parents and SANDBOX in default_cache_dir().parents
    assert mlflow.get_tracking_uri() == f"sqlite:///{SANDBOX / 'mlflow.db'}"
    assert Path.cwd() == SANDBOX
    seen = subprocess.run(
        [sys.executable, "-c", "import pathlib; print(pathlib.Path.home())"], capture_output=True, text=True, timeout=60
    ).stdout.strip()
    assert seen == str(Path.home())


def test_downloads_go_to_elistimator_cache_dir_else_the_home_cache(tmp_path, data, monkeypatch):
    """README: cache_dir defaults to $ELISTIMATOR_CACHE_DIR, else ~/.cache/elistimator_tracking/downloads."""
    (x, y), (vx, vy) = data
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        train_epochs(est, 1)
        source = f"runs:/{est.run_id}"
    monkeypatch.setenv("ELISTIMATOR_CACHE_DIR", str(tmp_path / "env-cache"))
    Elistimator.from_disk(source, verbose=False).close()
    assert [p.name for p in (tmp_path / "env-cache").glob("*/runs/*/*")] == ["step-9"]
    monkeypatch.delenv("ELISTIMATOR_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    Elistimator.from_disk(source, verbose=False).close()
    downloads = tmp_path / "home" / ".cache" / "elistimator_tracking" / "downloads"
    assert [p.name for p in downloads.glob("*/runs/*/*")] == ["step-9"]


def test_the_default_store_is_mlflow_db_in_the_working_directory(tmp_path, data, monkeypatch):
    """README: without MLFLOW_TRACKING_URI, runs go to sqlite:///mlflow.db with artifacts in ./mlruns."""
    (x, y), (vx, vy) = data
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(tmp_path)
    with Elistimator(tiny_model_fn, "model", verbose=False) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        train_epochs(est, 1)
        run_id = est.run_id
        assert est.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(run_id)
    assert run.info.status == "FINISHED"
    assert (tmp_path / "mlruns").is_dir() and any((tmp_path / "mlruns").rglob("model-9.index"))
