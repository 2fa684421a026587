"""No secret survives in the source a run stores or in its error text (issue 30, finding 4).

Before the fix (main 5fa99ec), ``scrub_source`` kept 28 of the 35 source forms below (the issue
named 8: annotated and tuple assignments, bytes, raw, f- and triple-quoted strings, an env default,
a value on the next line inside parentheses; the redaction replaced a one-token prefix), and
``scrub`` kept 8 of the 18 error-text forms (``db connect failed: password=X`` kept X: the pattern
took ``failed:`` as the name); after a real failed run, 36 marker hits were found in the model
directory, the artifacts and the database. Each form below carries its own marker; none may reach
the run.
"""

from __future__ import annotations

import importlib.util
import re
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import dataset_fn
from mlflow import MlflowClient

from elistimator_tracking import Elistimator
from elistimator_tracking.tracking.redaction import REDACTED, redact_source, redact_text
from elistimator_tracking.tracking.run_info import scrub, scrub_source

SOURCE = textwrap.dedent(
    '''
    """A model file with secrets in it: KEEP-S00 (prose stays)."""
    import os

    def connect(**kwargs):
        return kwargs

    def set_password(value):
        return value

    password = "MARK-S01"
    db_password: str = "MARK-S02"
    user, passwd = "KEEP-S03", "MARK-S03"
    api_token = b"MARK-S04"
    secret_key = r"MARK-S05\\d"
    auth_token = f"MARK-S06-{len('x')}"
    private_key = """MARK-S07
    spans lines"""
    os.getenv("DB_PASSWORD", "MARK-S08")
    client_secret = (
        "MARK-S09"
    )
    access_key = ("MARK-S10a"
                  "MARK-S10b")
    settings = {"user": "KEEP-S11", "password": "MARK-S11"}
    connect(user="KEEP-S12", password="MARK-S12")
    options = dict(api_key="MARK-S13")

    class Config:
        token = "MARK-S14"

    config = Config()
    config.token = "MARK-S15"
    settings["auth"] = "MARK-S16"
    os.environ["SERVICE_TOKEN"] = "MARK-S17"
    os.environ.setdefault("GITHUB_TOKEN", "MARK-S18")
    pwd = "x"
    pwd += "MARK-S19"
    name = alias_password = "MARK-S20"

    def login(user="KEEP-S21", password="MARK-S21"):
        return user, password

    def check(token: str = "MARK-S22") -> bool:
        return token == "MARK-S23"

    if (session_token := "MARK-S24"):
        pass
    (username, pwd2) = ("KEEP-S25", "MARK-S25")
    [login_name, secret] = ["KEEP-S26", "MARK-S26"]
    token_or_none = "MARK-S27" if username else "MARK-S27b"
    os.environ.get("API_KEY", "MARK-S28")
    settings.get("password", "MARK-S29")
    set_password("MARK-S30")

    def get_api_key():
        return "MARK-S31"

    callback = lambda password="MARK-S32": password  # noqa: E731
    dsn = "postgresql://admin:MARK-S33@db.internal/prod"
    note = "host=db password=MARK-S34"  # a comment: token=MARK-S35
    username = "KEEP-S36"
    print("KEEP-S37", "password reset for", username)
    '''
)
SOURCE_FORMS = sorted(set(re.findall(r"MARK-S\d+", SOURCE)))

MODEL_FN = textwrap.dedent(
    """
    from elistimator_tracking import EvaluationSpec, PredictSpec, TrainSpec
    from elistimator_tracking._tf import tf

    def model_fn(features, is_training, params):
        logits = tf.layers.dense(features["x"], 2)
        loss = tf.losses.sparse_softmax_cross_entropy(features["y"], logits)
        train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss, tf.train.get_global_step())
        return TrainSpec(loss, train_op), EvaluationSpec(loss), PredictSpec({"logits": logits})
    """
)

ERROR_TEXT = "\n".join(
    [
        "db connect failed: password=MARK-E01",
        "password: MARK-E02",
        "password = MARK-E03",
        'password="MARK-E04 with spaces"',
        "{'password': 'MARK-E05', 'user': 'KEEP-E05'}",
        '{"api_key": "MARK-E06"}',
        "GET /x?token=MARK-E07&user=KEEP-E07",
        "Authorization: Bearer MARK-E08",
        "postgresql://user:MARK-E09@host/db",
        "PGPASSWORD=MARK-E10 psql -h host",
        "--password MARK-E11 --user KEEP-E11",
        "--client-secret=MARK-E12",
        "aws_secret_access_key = MARK-E13",
        "'password': b'MARK-E14'",
        "<password>MARK-E15</password>",
        "login(passwd=MARK-E16)",
        "secret => MARK-E17",
        "config.db.password:MARK-E18;",
    ]
)
ERROR_FORMS = sorted(set(re.findall(r"MARK-E\d+", ERROR_TEXT)))


def test_at_least_twenty_source_forms_are_redacted_and_the_rest_kept():
    assert len(SOURCE_FORMS) >= 20
    redacted = redact_source(SOURCE)
    assert [m for m in SOURCE_FORMS if m in redacted] == []
    assert [k for k in sorted(set(re.findall(r"KEEP-S\d+", SOURCE))) if k not in redacted] == []
    compile(redacted, "model.py", "exec")  # still Python
    assert redacted.count("\n") == SOURCE.count("\n")  # line numbers kept
    assert scrub_source(SOURCE) == redacted  # run_info's callers get the same


def test_at_least_ten_error_text_forms_are_redacted_and_the_rest_kept():
    assert len(ERROR_FORMS) >= 10
    redacted = redact_text(ERROR_TEXT)
    assert [m for m in ERROR_FORMS if m in redacted] == []
    assert [k for k in sorted(set(re.findall(r"KEEP-E\d+", ERROR_TEXT))) if k not in redacted] == []
    assert redacted.splitlines()[0] == f"db connect failed: password={REDACTED}"
    assert scrub(ERROR_TEXT) == redacted
    assert redact_text("max_steps=10, learning_rate: 0.1, run 3f2a") == "max_steps=10, learning_rate: 0.1, run 3f2a"


def test_source_the_tokenizer_cannot_read_is_withheld():
    assert "MARK" not in redact_source('password = "MARK-X\n')


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_no_marker_reaches_any_file_or_the_database_of_a_failed_tracked_run(tmp_path, data):
    (x, y), (vx, vy) = data
    model_file = tmp_path / "secretive_model.py"
    model_file.write_text(SOURCE + MODEL_FN)
    secretive_model_fn = load_module(model_file).model_fn
    store, artifacts = tmp_path / "store.db", tmp_path / "artifacts"
    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.create_experiment("secrets", artifact_location=artifacts.as_uri())
    with pytest.raises(RuntimeError):
        with Elistimator(
            secretive_model_fn,
            tmp_path / "model",
            params={"db": {"password": "MARK-P01"}, "note": "token=MARK-P02"},
            verbose=False,
            tracking=f"sqlite:///{store}",
            experiment="secrets",
            run_name="run password=MARK-P03",
            tags={"note": "api_key: MARK-P04"},
        ) as est:
            est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            est.train().save_ckpt()
            raise RuntimeError(ERROR_TEXT)
    run = client.search_runs([experiment])[0]
    assert run.info.status == "FAILED" and run.data.tags["elistimator.model_fn.source"] == "source/secretive_model.py"
    stored = Path(client.download_artifacts(run.info.run_id, "source/secretive_model.py", str(tmp_path / "got")))
    assert "KEEP-S37" in stored.read_text()  # the source arrived, redacted
    assert REDACTED in run.data.tags["elistimator.error"]
    markers = [*SOURCE_FORMS, *ERROR_FORMS, "MARK-P01", "MARK-P02", "MARK-P03", "MARK-P04"]
    found = {}
    for root in (tmp_path / "model", artifacts):
        for file in root.rglob("*"):
            if file.is_file():
                content = file.read_bytes()
                found.update({f"{file}: {m}": True for m in markers if m.encode() in content})
    with sqlite3.connect(store) as database:
        dumped = "\n".join(database.iterdump())
    found.update({f"database: {m}": True for m in markers if m in dumped})
    assert sorted(found) == []
