"""Smoke tests of the examples: a few steps each, through their real entry points."""

import sys

from conftest import import_example


def test_quickstart_runs(tmp_path, monkeypatch, capsys):
    quickstart = import_example("quickstart")
    monkeypatch.setattr(sys, "argv", ["quickstart.py", "--epochs", "2", "--model-dir", str(tmp_path / "qs")])
    quickstart.main()
    out = capsys.readouterr().out
    assert "evaluation: {'accuracy':" in out and f"tensorboard --logdir {tmp_path / 'qs'}" in out
    assert (tmp_path / "qs" / "train").is_dir() and (tmp_path / "qs" / "validation").is_dir()
