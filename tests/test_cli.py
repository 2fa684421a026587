"""The ``elistimator`` command against a real SQLite store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import dataset_fn, tiny_model_fn
from elistimator_tracking import Elistimator
from elistimator_tracking.cli import main
from elistimator_tracking.tracking.mlflow_tracker import MlflowTracker


@pytest.fixture
def experiment(tmp_path, data, request):
    """Two finished runs of one experiment with different learning rates."""
    (x, y), (vx, vy) = data
    name = request.node.name
    run_ids = {}
    for rate in (0.01, 0.5):
        with Elistimator(tiny_model_fn, tmp_path / f"model-{rate}", params={"learning_rate": rate}, verbose=False,
                         experiment=name, run_name=f"lr-{rate}") as est:
            est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            for _ in range(2):
                est.train().validate()
                est.save_ckpt()
            run_ids[rate] = est.run_id
    return name, run_ids


def test_runs_compares_the_runs_sorted_by_a_metric(experiment, capsys):
    name, run_ids = experiment
    assert main(["runs", name, "--sort-by", "loss"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[:4] == ["run", "id", "status", "learning_rate"] and "best" in header and "last" in header
    client = MlflowClient()
    best_loss = {rate: min(m.value for m in client.get_metric_history(run_id, "validation/loss"))
                 for rate, run_id in run_ids.items()}
    lowest, highest = sorted(best_loss, key=best_loss.get)
    assert lines[2].startswith(f"lr-{lowest}") and lines[3].startswith(f"lr-{highest}")
    assert main(["runs", name, "--sort-by", "loss", "--mode", "max"]) == 0
    assert capsys.readouterr().out.splitlines()[2].startswith(f"lr-{highest}")


def test_best_register_and_download(experiment, tmp_path, capsys):
    name, run_ids = experiment
    assert main(["best", name, "--metric", "accuracy", "--mode", "max"]) == 0
    out = capsys.readouterr().out
    assert "best run: lr-" in out and "checkpoint: step" in out and "runs:/" in out
    assert main(["register", run_ids[0.5], f"{name}-model", "--metric", "loss"]) == 0
    assert f"registered models:/{name}-model/1 (@champion)" in capsys.readouterr().out
    assert main(["download", f"models:/{name}-model@champion", str(tmp_path / "champion")]) == 0
    with Elistimator.from_disk(tmp_path / "champion", verbose=False, tracking=False) as est:
        assert est.global_step in (9, 18)
    assert main(["download", f"runs:/{run_ids[0.01]}", str(tmp_path / "latest"), "--checkpoint", "latest"]) == 0
    assert (tmp_path / "latest" / "checkpoints" / "model-18.index").is_file()


@pytest.mark.parametrize("argv, message", [
    (["runs", "no-such-experiment"], "no experiment 'no-such-experiment'"),
    (["best", "no-such-experiment"], "no experiment 'no-such-experiment'"),
    (["register", "0123456789abcdef0123456789abcdef", "m"], "there is no run"),
    (["download", "models:/nothing@champion", "out"], "is not in the Model Registry"),
    (["download", "nonsense", "out"], "is not a model source"),
    (["sync", "no-such-dir"], "does not exist"),
])
def test_failures_exit_1_with_one_clear_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith(f"elistimator {argv[0]}: error: ")


def test_sync_delivers_what_a_model_directory_kept(tmp_path, data, capsys, tracking_store):
    (x, y), _ = data
    tracker = MlflowTracker("notascheme://typo", start_timeout=2, close_timeout=2)
    with pytest.warns(UserWarning):
        with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=tracker) as est:
            est.setup(dataset_fn(x, y))
            est.train().save_ckpt()
    assert main(["sync", str(tmp_path / "model"), "--tracking-uri", tracking_store]) == 0
    assert f"{tracking_store}: all delivered" in capsys.readouterr().out


def test_the_console_script_has_help_on_every_command():
    script = Path(sys.executable).parent / "elistimator"
    for command in ([], ["runs"], ["best"], ["register"], ["download"], ["sync"]):
        done = subprocess.run([str(script), *command, "--help"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "usage: elistimator" in done.stdout, done.stderr
