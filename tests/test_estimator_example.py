"""The seed's tf.estimator formulation of the parity example, end to end: train_and_evaluate, a SavedModel,
a registered version, and ``mlflow models serve`` answering over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import import_example
from mlflow_server import ModelServer

pytestmark = pytest.mark.slow


def test_the_estimator_parity_example_trains_exports_registers_and_serves(tmp_path, request, capsys):
    example = import_example("german_numbers/parity_estimator")
    name = request.node.name
    result = example.main(
        [
            "--max-steps",
            "40",
            "--checkpoint-every",
            "20",
            "--train-size",
            "400",
            "--model-dir",
            str(tmp_path / "model"),
            "--register-as",
            name,
        ]
    )
    printed = capsys.readouterr()  # issue 28: it printed nothing at all while it trained
    assert "Training (1)" in printed.err and "accuracy=" in printed.out
    assert f"registered models:/{name}/1; @champion moved to it" in printed.out
    assert result["metrics"]["global_step"] == 40 and 0 <= result["metrics"]["accuracy"] <= 1
    assert (Path(result["exported"]) / "saved_model.pb").is_file() and result["version"] == "1"
    words = ["einundzwanzig", "einhundertzweiundvierzig", example.german(999_998), example.german(54_321)]
    encoded = example.encode(words)
    server = ModelServer(tmp_path / "serve", f"models:/{name}@champion").start()
    try:
        call = urllib.request.Request(
            f"{server.uri}/invocations",
            headers={"Content-Type": "application/json"},
            data=json.dumps({"inputs": {k: v.tolist() for k, v in encoded.items()}}).encode(),
        )
        with urllib.request.urlopen(call, timeout=60) as response:
            answer = json.loads(response.read())["predictions"]
    finally:
        server.stop()
    odd = answer["odd"] if isinstance(answer, dict) else [row["odd"] for row in answer]
    np.testing.assert_array_equal(odd, result["answers"])
