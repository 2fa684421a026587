"""The README's walkthrough runs as written: its Python blocks, in order, in one fresh process, in an
empty working directory whose data/mnist holds MNIST-shaped idx files (a subset of the suite's
digits-based set), tracked to MLflow's default store there (issue 20, finding 8)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import MNIST_FILES, write_idx
from mlflow import MlflowClient

README = Path(__file__).resolve().parents[1] / "README.md"
IMAGES = 700  # 560 to train (10 steps an epoch), 140 to validate


def python_blocks(text: str) -> list:
    """The ```python blocks; ```python no-run marks a reference snippet that needs another set-up
    (several devices or processes) and is not part of the walkthrough."""
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


@pytest.fixture
def small_mnist(digits_mnist_dir, tmp_path):
    """data/mnist with the first IMAGES images of the digits-based idx files."""
    import gzip

    target = tmp_path / "data" / "mnist"
    target.mkdir(parents=True)
    for name in MNIST_FILES:
        with gzip.open(digits_mnist_dir / name, "rb") as handle:
            raw = handle.read()
        dims = raw[3]
        shape = np.frombuffer(raw[4 : 4 + 4 * dims], ">u4").astype(int)
        array = np.frombuffer(raw[4 + 4 * dims :], np.uint8).reshape(shape)
        write_idx(target / name, array[:IMAGES])
    return tmp_path


@pytest.mark.slow
def test_the_readme_walkthrough_runs_as_written(small_mnist):
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 12
    script = "\n".join(f"print('--- block {i}', flush=True)\n{block}" for i, block in enumerate(blocks))
    script += "\nprint('--- walkthrough done', flush=True)\n"
    (small_mnist / "walkthrough.py").write_text(script, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # MLflow's default store, here
    done = subprocess.run(
        [sys.executable, "walkthrough.py"], cwd=small_mnist, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert done.stdout.rstrip().endswith("--- walkthrough done")
    client = MlflowClient(f"sqlite:///{small_mnist / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("mnist").experiment_id])
    assert [run.info.status for run in runs] == ["FINISHED"]  # the `with` block ended it
    champion = client.get_model_version_by_alias("mnist-cnn", "champion")
    first, second = (client.get_model_version("mnist-cnn", v) for v in ("1", "2"))
    assert second.run_id == runs[0].info.run_id  # register_best(run_id, ...) came last, by validation/loss
    better = float(second.tags["validation/loss"]) < float(first.tags["validation/loss"])
    assert str(champion.version) == ("2" if better else "1")  # the alias moves only to a better version
    everything = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert {run.info.status for run in everything} == {"FINISHED"}  # closed, or ended at exit
