"""Estimator-trained models in MLflow, as SavedModels, after a SIGKILL, and through from_disk and the registry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import estimator_programs as programs
import mlflow
import numpy as np
import pytest
from conftest import history, stored_steps
from mlflow import MlflowClient

from elistimator_tracking import Elistimator
from elistimator_tracking import estimator as tf_estimator
from elistimator_tracking._faults import CRASH_ENV
from elistimator_tracking._tf import tf

PROGRAM = Path(__file__).with_name("estimator_programs.py")


def subprocess_env(**extra) -> dict:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROGRAM.parents[1]), str(PROGRAM.parent), *sys.path]),
        **extra,
    }


@pytest.fixture
def trained(tmp_path):
    """train_and_evaluate to step 30 with a checkpoint (and a validation) every 10 steps, tracked."""
    est = tf_estimator.Estimator(
        programs.model_fn,
        str(tmp_path / "model"),
        params={"learning_rate": 0.1},
        config=tf_estimator.RunConfig(save_checkpoints_steps=10, save_summary_steps=5),
    )
    tf_estimator.train_and_evaluate(
        est,
        tf_estimator.TrainSpec(programs.train_input_fn(), max_steps=30),
        tf_estimator.EvalSpec(programs.eval_input_fn, steps=None, throttle_secs=0),
    )
    yield est
    est.close()


def test_the_run_holds_losses_validations_evaluations_checkpoints_and_the_saved_model(trained, tmp_path):
    holdout = trained.evaluate(programs.eval_input_fn, name="holdout")
    exported = trained.export_saved_model(str(tmp_path / "export"), programs.serving_input_receiver_fn)
    trained.close()
    run_id = json.loads((Path(trained.model_dir) / "elistimator.json").read_text())["tracking"]["run_id"]
    client = MlflowClient()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params["learning_rate"] == "0.1"
    assert [step for step, _ in history(client, run_id, "train/loss")] == [5, 10, 15, 20, 25, 30]
    assert [step for step, _ in history(client, run_id, "validation/accuracy")] == [10, 20, 30]
    assert history(client, run_id, "evaluation/holdout/accuracy") == [(30, pytest.approx(holdout["accuracy"]))]
    assert stored_steps(client, run_id) == [0, 10, 20, 30]  # with the step-0 checkpoint tf.estimator saved too
    saved = [a.path for a in client.list_artifacts(run_id, "saved_models")]
    assert saved == [f"saved_models/{Path(exported.decode()).name}"]
    assert "saved_model.pb" in [Path(a.path).name for a in client.list_artifacts(run_id, saved[0])]


@pytest.mark.slow
def test_the_saved_model_loads_in_a_fresh_process_and_predicts_as_predict_does(trained, tmp_path):
    exported = trained.export_saved_model(str(tmp_path / "export"), programs.serving_input_receiver_fn).decode()
    x, _ = programs.blobs(10, seed=2)
    expected = list(trained.predict(programs.predict_input_fn))
    script = (
        "import json, sys, numpy as np, tensorflow as tf\n"
        "model = tf.saved_model.load(sys.argv[1])\n"
        "x = tf.constant(np.array(json.loads(sys.argv[2]), np.float32))\n"
        "out = model.signatures['serving_default'](x=x)\n"
        "print(json.dumps({k: v.numpy().tolist() for k, v in out.items()}))\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", script, exported, json.dumps(x.tolist())],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=True,
        timeout=300,
    )
    outputs = json.loads(answer.stdout.strip().splitlines()[-1])
    np.testing.assert_array_equal(outputs["classes"], [p["classes"] for p in expected])
    np.testing.assert_allclose(outputs["probabilities"], [p["probabilities"] for p in expected], rtol=1e-5)
    cli = Path(sys.executable).with_name("saved_model_cli")
    shown = subprocess.run(
        [str(cli), "show", "--dir", exported, "--all"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=300,
    )
    assert shown.returncode == 0 and "signature_def['serving_default']" in shown.stdout


def test_from_disk_and_the_registry_serve_an_estimator_trained_model(trained, request):
    x, _ = programs.blobs(10, seed=2)
    validated = {s: c for s, c in trained.elistimator.checkpoints.items() if c["metrics"]}  # not step 0
    best = min(validated, key=lambda s: validated[s]["metrics"]["loss"])
    trained.elistimator.register_best(request.node.name)
    expected = list(
        trained.predict(
            programs.predict_input_fn,
            checkpoint_path=trained.elistimator.checkpoints[best]["file"],
            yield_single_examples=False,
        )
    )
    probabilities = np.concatenate([batch["probabilities"] for batch in expected])
    model = mlflow.pyfunc.load_model(f"models:/{request.node.name}@champion")
    np.testing.assert_allclose(model.predict({"x": x})["probabilities"], probabilities, rtol=1e-5)
    run_id = trained.elistimator.run_id
    with Elistimator.from_disk(trained.model_dir, "best", tracking=False, verbose=False) as loaded:
        np.testing.assert_allclose(loaded.predict(x=x)["probabilities"], probabilities, rtol=1e-5)
    for source in (f"runs:/{run_id}", f"models:/{request.node.name}@champion"):
        with Elistimator.from_disk(source, "best", tracking=False, verbose=False) as loaded:
            np.testing.assert_allclose(loaded.predict(x=x)["probabilities"], probabilities, rtol=1e-5)


def test_export_needs_export_outputs_and_a_checkpoint(tmp_path):
    def model_fn(features, labels, mode, params):
        spec = programs.model_fn(features, labels, mode, params)
        return spec._replace(export_outputs={}) if mode == tf_estimator.ModeKeys.PREDICT else spec

    est = tf_estimator.Estimator(model_fn, str(tmp_path / "model"), tracking=False)
    with pytest.raises(ValueError, match="Couldn't find trained model"):  # tf.estimator 2.15's words
        est.export_saved_model(str(tmp_path / "export"), programs.serving_input_receiver_fn)
    est.train(programs.train_input_fn(), steps=2)
    with pytest.raises(ValueError, match="export_saved_model needs export_outputs"):
        est.export_saved_model(str(tmp_path / "export"), programs.serving_input_receiver_fn)
    assert not (tmp_path / "export").exists() or not any((tmp_path / "export").iterdir())
    est.close()


def test_raw_and_parsing_receivers_export_servable_signatures(tmp_path):
    est = tf_estimator.Estimator(programs.model_fn, str(tmp_path / "model"), tracking=False)
    est.train(programs.train_input_fn(), steps=3)
    with tf.Graph().as_default():
        raw = tf_estimator.export.build_raw_serving_input_receiver_fn({"x": tf.placeholder(tf.float32, [None, 3])})
    parsing = tf_estimator.export.build_parsing_serving_input_receiver_fn({"x": tf.io.FixedLenFeature([3], tf.float32)})
    # a ClassificationOutput is servable from serialized tf.Examples only (tf.estimator skipped it otherwise)
    for receiver_fn, inputs, signatures in (
        (raw, ["x"], ["serving_default"]),
        (parsing, ["examples"], ["classify", "serving_default"]),
    ):
        path = est.export_saved_model(str(tmp_path / "export"), receiver_fn).decode()
        with tf.Graph().as_default(), tf.Session() as session:
            meta = tf.saved_model.loader.load(session, ["serve"], path)
            assert sorted(meta.signature_def["serving_default"].inputs) == inputs
            assert sorted(meta.signature_def) == signatures
    est.close()


@pytest.mark.slow
def test_training_resumes_after_a_sigkill_in_the_same_run(tmp_path):
    model_dir = tmp_path / "model"
    killed = subprocess.run(
        [sys.executable, str(PROGRAM), "train", str(model_dir), "40"],
        cwd=tmp_path,
        env=subprocess_env(**{CRASH_ENV: "save.committed:3"}),
        capture_output=True,
        timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL
    recorded = json.loads((model_dir / "elistimator.json").read_text())
    assert sorted(int(step) for step in recorded["checkpoints"]) == [0, 10, 20]  # the 3rd commit: step 20
    est = tf_estimator.Estimator(
        programs.model_fn,
        str(model_dir),
        params={"learning_rate": 0.1},
        config=tf_estimator.RunConfig(save_checkpoints_steps=10, save_summary_steps=5),
    )
    est.train(programs.train_input_fn(), max_steps=40)
    assert sorted(est.elistimator.checkpoints) == [0, 10, 20, 30, 40]
    est.close()
    run_id = json.loads((model_dir / "elistimator.json").read_text())["tracking"]["run_id"]
    client = MlflowClient()
    assert stored_steps(client, run_id) == [0, 10, 20, 30, 40]
    # one run: the killed process's losses (its journal delivered them if it could not) and the resumed ones
    assert [step for step, _ in history(client, run_id, "train/loss")] == [5, 10, 15, 20, 25, 30, 35, 40]


@pytest.mark.slow
def test_the_tensorflow_getting_started_custom_estimator_runs_unchanged(tmp_path):
    """tensorflow.org's TF 1.x "Getting Started" custom model_fn program, only its imports changed."""
    program = PROGRAM.with_name("estimator_getting_started.py")
    done = subprocess.run(
        [sys.executable, str(program)], cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = {line.split(":")[0]: line.split(": ", 1)[1] for line in done.stdout.splitlines() if "metrics:" in line}
    train, evaluation = (eval(lines[key], {}) for key in ("train metrics", "eval metrics"))  # noqa: S307
    assert train["global_step"] == evaluation["global_step"] == 1000
    assert train["loss"] < 1e-6 and evaluation["loss"] == pytest.approx(0.0101, abs=1e-3)


def test_a_model_fn_failing_in_a_mode_fails_when_that_mode_is_used(tmp_path):
    def model_fn(features, labels, mode):  # labels in every mode, as the Getting Started model_fn
        y = tf.layers.dense(features["x"], 1)[:, 0]
        loss = tf.reduce_mean(tf.square(y - tf.cast(labels, tf.float32)))
        train_op = tf.train.GradientDescentOptimizer(0.01).minimize(loss, tf.train.get_global_step())
        return tf_estimator.EstimatorSpec(mode, predictions=y, loss=loss, train_op=train_op)

    est = tf_estimator.Estimator(model_fn, str(tmp_path), tracking=False)
    est.train(programs.train_input_fn(), steps=3)
    assert est.evaluate(programs.eval_input_fn)["global_step"] == 3
    with pytest.raises(ValueError, match="model_fn failed in mode 'infer' when the graph was built: None values"):
        next(est.predict(programs.predict_input_fn))
    est.close()


def test_numpy_input_fn_as_tf_estimator_had_it(tmp_path):
    x, y = programs.blobs(40)
    with pytest.raises(ValueError, match="shuffle must be provided explicitly"):
        tf_estimator.inputs.numpy_input_fn({"x": x}, y)
    est = tf_estimator.Estimator(programs.model_fn, str(tmp_path), tracking=False)
    est.train(tf_estimator.inputs.numpy_input_fn({"x": x}, y, batch_size=8, num_epochs=2, shuffle=True))
    assert est.get_variable_value("global_step") == 10
    est.close()


def test_closing_an_estimator_twice_does_nothing_the_second_time(tmp_path):
    est = tf_estimator.Estimator(programs.model_fn, str(tmp_path / "model"), params={"learning_rate": 0.1})
    est.train(programs.train_input_fn(), max_steps=2)
    est.close()
    est.close()
    with est:
        pass
    assert est.latest_checkpoint().endswith("-2")
