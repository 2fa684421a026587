"""Smoke tests of the examples: a few steps each, through their real entry points, tracked."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from conftest import SHARED_MNIST, import_example


def test_parity_example_trains_tests_and_registers(tmp_path, capsys):
    parity = import_example("german_numbers/parity")
    result = parity.main(["--epochs", "2", "--steps-per-epoch", "4", "--train-size", "300", "--quiet",
                          "--model-dir", str(tmp_path / "parity"), "--register-as", "parity-smoke"])
    out = capsys.readouterr().out
    assert 0.0 <= result["test"]["accuracy"] <= 1.0 and result["best_step"] in (4, 8)
    champion = MlflowClient().get_model_version_by_alias("parity-smoke", "champion")
    assert str(champion.version) == result["version"] and champion.run_id == result["run_id"]
    assert "einundzwanzig: " in out and "mlflow ui --backend-store-uri sqlite:///" in out
    assert f"tensorboard --logdir {tmp_path}\n" in out


@pytest.mark.slow
def test_parity_example_reaches_its_accuracy(tmp_path):
    """Half the main job's epochs already meet the 0.99 held-out accuracy it promises."""
    parity = import_example("german_numbers/parity")
    result = parity.main(["--epochs", "2", "--quiet", "--model-dir", str(tmp_path / "parity"),
                          "--register-as", "parity-accuracy"])
    assert result["test"]["accuracy"] >= 0.99


@pytest.mark.slow
def test_mnist_example_runs_the_seed_walkthrough(tmp_path, capsys):
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST images not found in {SHARED_MNIST}")
    example = import_example("mnist_example")
    result = example.main(["--data-dir", str(SHARED_MNIST), "--epochs", "2", "--steps-per-epoch", "10",
                           "--model-dir", str(tmp_path / "mnist"), "--register-as", "mnist-smoke"])
    assert result["predicted"] == 2000 and result["best_step"] in (10, 20)
    assert str(MlflowClient().get_model_version_by_alias("mnist-smoke", "champion").version) == result["version"]


def test_mnist_example_without_data_stops_at_once_and_says_how_to_get_it(tmp_path):
    example = import_example("mnist_example")
    with pytest.raises(SystemExit, match="(?s)MNIST was not found in .*--data-dir .*nothing"):
        example.main(["--data-dir", str(tmp_path / "nothing")])
    assert not (tmp_path / "runs").exists()
