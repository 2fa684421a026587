"""A registered version answers HTTP predictions through ``mlflow models serve`` on 127.0.0.1."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest

from conftest import dataset_fn, tiny_model_fn, train_epochs
from elistimator_tracking import Elistimator
from mlflow_server import ModelServer

pytestmark = pytest.mark.slow


def test_mlflow_models_serve_answers_with_the_predict_spec_outputs(tmp_path, data, request):
    (x, y), (vx, vy) = data
    name = request.node.name
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        train_epochs(est, 1)
        est.register_best(name)
        expected = est.predict(x=vx[:5])
    server = ModelServer(tmp_path / "serve", f"models:/{name}@champion").start()
    try:
        call = urllib.request.Request(f"{server.uri}/invocations", headers={"Content-Type": "application/json"},
                                      data=json.dumps({"inputs": {"x": vx[:5].tolist()}}).encode())
        with urllib.request.urlopen(call, timeout=60) as response:
            predictions = json.loads(response.read())["predictions"]
    finally:
        server.stop()
    np.testing.assert_array_equal(predictions["classes"], expected["classes"])
    np.testing.assert_allclose(predictions["probabilities"], expected["probabilities"], rtol=1e-5)
