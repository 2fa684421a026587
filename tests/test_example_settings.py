"""What the examples record and say: every command-line setting as it ran, one name for a run in
MLflow and TensorBoard, and an MNIST download hint that works from scratch."""

from __future__ import annotations

import gzip
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import import_example
from mlflow import MlflowClient

MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def write_idx(path: Path, array: np.ndarray) -> None:
    """``array`` (uint8) as an idx file, gzipped, as MNIST ships."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_mnist_test_set(directory: Path, count: int = 10_000) -> Path:
    """``t10k-*`` idx files of ``count`` random 28x28 images and labels (the example splits 8,000/2,000)."""
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    write_idx(directory / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28)))
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, count))
    return directory


def test_mnist_example_logs_the_epochs_it_ran_and_names_its_run_as_its_tensorboard_directory(tmp_path, capsys):
    example = import_example("mnist_example")
    data_dir = fake_mnist_test_set(tmp_path / "mnist")
    model_dir = tmp_path / "mnist-run"
    summary = example.main(
        [
            "--data-dir",
            str(data_dir),
            "--epochs",
            "2",
            "--steps-per-epoch",
            "1",
            "--model-dir",
            str(model_dir),
            "--register-as",
            "mnist-settings",
        ]
    )
    run = MlflowClient().get_run(summary["run_id"])
    assert {k: run.data.params[k] for k in ("epochs", "steps_per_epoch", "data_dir", "register_as")} == {
        "epochs": "2",
        "steps_per_epoch": "1",
        "data_dir": str(data_dir),
        "register_as": "mnist-settings",
    }
    assert run.info.run_name == "mnist-run" and (model_dir / "train").is_dir()
    assert f"--logdir {tmp_path} (run 'mnist-run')" in capsys.readouterr().out


def test_parity_example_logs_every_setting_and_names_its_run_as_its_tensorboard_directory(tmp_path):
    parity = import_example("german_numbers/parity")
    model_dir = tmp_path / "parity-settings"
    result = parity.main(
        [
            "--epochs",
            "1",
            "--train-size",
            "300",
            "--seed",
            "3",
            "--quiet",
            "--model-dir",
            str(model_dir),
            "--register-as",
            "parity-settings",
        ]
    )
    run = MlflowClient().get_run(result["run_id"])
    expected = {
        "epochs": "1",
        "train_size": "300",
        "seed": "3",
        "steps_per_epoch": "5",  # 300 words, batches of 64
        "experiment": "german-parity",
        "register_as": "parity-settings",
        "quiet": "True",
    }
    assert {k: run.data.params[k] for k in expected} == expected
    assert run.info.run_name == "parity-settings" and (model_dir / "validation").is_dir()
    assert result["best_step"] == 5


def test_mnist_download_hint_works_where_the_directory_does_not_exist_yet(tmp_path):
    """The printed command, pointed at a local mirror, creates the directory and fetches all four files."""
    example = import_example("mnist_example")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in MNIST_FILES:
        write_idx(mirror / name, np.zeros((2, 28, 28) if "images" in name else (2,)))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(SystemExit) as stop:
        example.main(["--data-dir", "data/mnist"])
    hint = str(stop.value.code)
    command = re.search(r'python -c "(.+)"', hint).group(1)
    mirror_url = import_example("mnist_data").MIRROR
    assert mirror_url in command and not (work / "data").exists()
    done = subprocess.run(
        [sys.executable, "-c", command.replace(mirror_url, mirror.as_uri() + "/")],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (work / "data" / "mnist").iterdir()) == sorted(MNIST_FILES)
    assert "set ELISTIMATOR_MNIST_DIR to it" in hint.splitlines()[-1]
