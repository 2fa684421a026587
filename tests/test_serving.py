"""A registered version answers HTTP predictions through ``mlflow models serve`` on 127.0.0.1."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from conftest import registered_tiny_model
from mlflow_server import ModelServer

pytestmark = pytest.mark.slow


def test_mlflow_models_serve_answers_with_the_predict_spec_outputs_and_refuses_a_wrong_shape(tmp_path, data, request):
    (_, _), (vx, _) = data
    name = request.node.name
    expected = registered_tiny_model(tmp_path / "model", data, name, rows=5)
    server = ModelServer(tmp_path / "serve", f"models:/{name}@champion").start()
    try:
        status, predictions = invoke(server, {"inputs": {"x": vx[:5].tolist()}})
        wrong_status, refusal = invoke(server, {"inputs": {"x": [[0.1]]}})  # the model takes 2 features
    finally:
        server.stop()
    assert status == 200
    np.testing.assert_array_equal(predictions["predictions"]["classes"], expected["classes"])
    np.testing.assert_allclose(predictions["predictions"]["probabilities"], expected["probabilities"], rtol=1e-5)
    # the version's signature refuses it before the model runs: a schema error naming the feature
    assert wrong_status == 400 and refusal["error_code"] == "INVALID_PARAMETER_VALUE", refusal
    assert refusal["error_class"] == "SCHEMA_ENFORCEMENT_FAILED" and "{'x': array([[0.1]]" in refusal["message"]
    assert "Shape of input (1, 1) does not match expected shape (-1, 2)" in refusal["message"]


def invoke(server: ModelServer, body: dict):
    """POST ``body`` to the server's /invocations: (HTTP status, answer as JSON)."""
    call = urllib.request.Request(
        f"{server.uri}/invocations", headers={"Content-Type": "application/json"}, data=json.dumps(body).encode()
    )
    try:
        with urllib.request.urlopen(call, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
