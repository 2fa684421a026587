"""Smoke tests of the examples: a few steps each, through their real entry points, tracked; what
they report is checked against the registered model and the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DIGITS_MNIST_SIZE, history, import_example
from mlflow import MlflowClient

from elistimator_tracking import Elistimator


def test_parity_example_trains_tests_and_registers(tmp_path, capsys):
    parity = import_example("german_numbers/parity")
    result = parity.main(
        [
            "--epochs",
            "2",
            "--steps-per-epoch",
            "4",
            "--train-size",
            "300",
            "--quiet",
            "--model-dir",
            str(tmp_path / "parity"),
            "--register-as",
            "parity-smoke",
        ]
    )
    out = capsys.readouterr().out
    champion = MlflowClient().get_model_version_by_alias("parity-smoke", "champion")
    assert str(champion.version) == result["version"] and champion.run_id == result["run_id"]
    assert champion.tags["elistimator.step"] == str(result["best_step"])
    with Elistimator.from_disk(tmp_path / "parity", verbose=False, tracking=False) as est:
        accuracy = {step: c["metrics"]["accuracy"] for step, c in est.checkpoints.items()}
    assert sorted(accuracy) == [4, 8] and accuracy[result["best_step"]] == max(accuracy.values())
    for name, value in result["test"].items():  # the test was evaluated at the best checkpoint, and logged
        assert history(MlflowClient(), result["run_id"], f"evaluation/{name}") == [(result["best_step"], value)]
    assert "einundzwanzig: " in out and "mlflow ui --backend-store-uri sqlite:///" in out
    assert f"tensorboard --logdir {tmp_path}\n" in out
    # issue 28: the three datasets showed as `make` in the UI, and the last lines did not say where @champion went
    inputs = MlflowClient().get_run(result["run_id"]).inputs.dataset_inputs
    names = sorted(i.dataset.name for i in inputs)
    assert names == ["german-words-test", "german-words-train", "german-words-validation"]
    assert f"registered models:/parity-smoke/{result['version']}; @champion moved to it\n" in out


def test_the_main_job_opens_with_no_tensorflow_notices(tmp_path):
    """Issue 28: 8 TensorFlow deprecation notices (and its C++ start-up logs) opened the main job's output."""
    script = Path(__file__).resolve().parents[1] / "examples" / "german_numbers" / "parity.py"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    args = ["--epochs", "1", "--steps-per-epoch", "2", "--train-size", "200", "--model-dir", str(tmp_path / "m")]
    done = subprocess.run(
        [sys.executable, str(script), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert [line for line in lines if not line.startswith(("Training (", "Validation:", "Evaluation:"))] == []
    assert "held-out test accuracy" in done.stdout


def test_sweep_example_runs_its_trials_under_one_study_run_and_registers_the_best(tmp_path, capsys):
    sweep_example = import_example("german_numbers/sweep")
    argv = ["--trials", "4", "--train-size", "300", "--validations", "3", "--steps-per-validation", "2"]
    result = sweep_example.main([*argv, "--root", str(tmp_path / "sweep"), "--register-as", "sweep-smoke"])
    study, sweep = result["study"], result["sweep"]
    assert len(study.trials) == 4 and sum(result["states"].values()) == 4
    client = MlflowClient()
    children = client.search_runs(
        [client.get_experiment_by_name("german-parity-sweep").experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{sweep.parent_run_id}'",
    )
    assert sorted(r.info.run_name for r in children) == [f"trial-{n}" for n in range(4)]
    champion = client.get_model_version_by_alias("sweep-smoke", "champion")
    assert champion.run_id == study.best_trial.user_attrs["elistimator:run_id"]
    out = capsys.readouterr().out
    assert "Compare the trials in the MLflow UI" in out and "expand it" in out


@pytest.mark.slow
def test_parity_example_reaches_its_accuracy(tmp_path):
    """Half the main job's epochs already meet the 0.99 held-out accuracy it promises."""
    parity = import_example("german_numbers/parity")
    result = parity.main(
        ["--epochs", "2", "--quiet", "--model-dir", str(tmp_path / "parity"), "--register-as", "parity-accuracy"]
    )
    assert result["test"]["accuracy"] >= 0.99


@pytest.mark.slow
def test_mnist_example_runs_the_seed_walkthrough(tmp_path, digits_mnist_dir):
    """The MNIST path without ../shared: idx files made from scikit-learn's digits."""
    example = import_example("mnist_example")
    result = example.main(
        [
            "--data-dir",
            str(digits_mnist_dir),
            "--epochs",
            "2",
            "--steps-per-epoch",
            "10",
            "--model-dir",
            str(tmp_path / "mnist"),
            "--register-as",
            "mnist-smoke",
        ]
    )
    assert result["predicted"] == DIGITS_MNIST_SIZE - 8000  # the validation images
    champion = MlflowClient().get_model_version_by_alias("mnist-smoke", "champion")
    assert str(champion.version) == result["version"] and champion.run_id == result["run_id"]
    with Elistimator.from_disk(tmp_path / "mnist", verbose=False, tracking=False) as est:
        accuracy = {step: c["metrics"]["accuracy"] for step, c in est.checkpoints.items()}
    assert sorted(accuracy) == [10, 20] and accuracy[result["best_step"]] == max(accuracy.values())
    assert result["evaluation"]["accuracy"] == pytest.approx(accuracy[result["best_step"]], rel=1e-6)


def test_mnist_example_without_data_stops_at_once_and_says_how_to_get_it(tmp_path):
    example = import_example("mnist_example")
    with pytest.raises(SystemExit, match="(?s)MNIST was not found in .*nothing.*--data-dir"):
        example.main(["--data-dir", str(tmp_path / "nothing")])
    assert not (tmp_path / "runs").exists()
