"""A registered version answers HTTP predictions through ``mlflow models serve`` on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import dataset_fn, tiny_model_fn
from elistimator_tracking import Elistimator
from mlflow_server import free_port

pytestmark = pytest.mark.slow


def test_mlflow_models_serve_answers_with_the_predict_spec_outputs(tmp_path, data, request):
    (x, y), (vx, vy) = data
    name = request.node.name
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        est.train().validate()
        est.save_ckpt()
        est.register_best(name)
        expected = est.predict(x=vx[:5])
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{name}@champion",
               "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)]
    # the scoring server runs `uvicorn` from PATH: as with an activated virtual environment
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with open(tmp_path / "serve.log", "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        answer = None
        deadline = time.monotonic() + 180
        body = json.dumps({"inputs": {"x": vx[:5].tolist()}}).encode()
        while answer is None and time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                call = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                              headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(call, timeout=30) as response:
                    answer = json.loads(response.read())
            except OSError:
                time.sleep(0.5)
        assert answer is not None, (tmp_path / "serve.log").read_text()[-3000:]
        predictions = answer["predictions"]
        np.testing.assert_array_equal(predictions["classes"], expected["classes"])
        np.testing.assert_allclose(predictions["probabilities"], expected["probabilities"], rtol=1e-5)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
