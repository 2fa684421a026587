"""Where a model is tracked and loaded from, and what never leaves the process: credentials and secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import dataset_fn, stored_checkpoint, stored_dir, stored_steps, tiny_model_fn
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow_server import MlflowServer

from elistimator_tracking import Elistimator, cli
from elistimator_tracking.tracking.run_info import REDACTED, scrub
from elistimator_tracking.tracking.store_uri import public_uri

SECRET = "Hush-Secret-4711-xyz"
CREDENTIAL_VARIABLES = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


def files_containing(root: Path, secret: str) -> list[str]:
    return [str(path) for path in root.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]


def trained_run(model_dir: Path, store: str, data, **options) -> Elistimator:
    """Two epochs, each validated and saved (max_to_keep 1: step 9 is in the run only); closed."""
    (x, y), (vx, vy) = data
    with Elistimator(tiny_model_fn, model_dir, verbose=False, tracking=store, **options) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy), train_saver_args={"max_to_keep": 1})
        for _ in range(2):
            est.train().validate()
            est.save_ckpt()
    return est


def test_models_and_runs_sources_use_the_named_store_and_create_nothing_in_the_working_directory(
    tmp_path, data, monkeypatch
):
    (_, _), (vx, _) = data
    store = f"sqlite:///{tmp_path / 'store.db'}"
    est = trained_run(tmp_path / "model", store, data)
    est = Elistimator.from_disk(tmp_path / "model", tracking=store, verbose=False)
    assert est.register_best("named", alias="a") == "1"
    est.close()
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    elsewhere = tmp_path / "elsewhere.db"
    for n, environment in enumerate([None, f"sqlite:///{elsewhere}"]):
        if environment is None:
            monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        else:
            monkeypatch.setenv("MLFLOW_TRACKING_URI", environment)
        for source in ("models:/named@a", f"runs:/{est.run_id}"):
            with Elistimator.from_disk(source, tracking=store, verbose=False, cache_dir=tmp_path / f"cache{n}") as got:
                assert got.predict(x=vx)["classes"].shape == (30,)
        assert cli.main(["download", "models:/named@a", str(tmp_path / f"download{n}"), "--tracking-uri", store]) == 0
        assert Elistimator.from_disk(tmp_path / f"download{n}", tracking=False, verbose=False).global_step == 18
        assert list(here.iterdir()) == [] and not elsewhere.exists()


def test_a_tracking_record_inside_a_downloaded_checkpoint_is_never_followed(tmp_path, data, monkeypatch):
    """A crafted elistimator.json in a stored checkpoint, naming another store, does not redirect tracking."""
    (x, y), (vx, vy) = data
    store, attacker = f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "attacker.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    run_id = trained_run(tmp_path / "model", store, data).run_id
    client = MlflowClient(store)
    crafted = stored_dir(client, run_id, 18) / "elistimator.json"  # on the store's disk
    saved = json.loads(crafted.read_text())
    saved["tracking"] = {"tracking_uri": f"sqlite:///{attacker}", "experiment": "pwned", "run_key": "k", "run_id": None}
    crafted.write_text(json.dumps(saved))
    with Elistimator.from_disk(f"runs:/{run_id}", verbose=False, cache_dir=tmp_path / "cache") as loaded:
        loaded.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        loaded.train(steps=2).save_ckpt()
        new_run = loaded.run_id
    assert not attacker.exists()
    assert new_run not in (None, run_id) and client.get_run(new_run).info.status == "FINISHED"


def test_secrets_in_params_tags_and_the_run_name_are_redacted_in_the_run_and_the_journal(tmp_path, data):
    store = f"sqlite:///{tmp_path / 'store.db'}"
    params = {
        "learning_rate": 0.5,
        "credentials": {"value": "s1"},
        "aws_access_key_id": "s2",
        "pwd": "s3",
        "ssh_key": "s4",
        "auth": {"bearer": "s5"},
        "headers": {"Authorization": "Bearer s6"},
        "database": "postgresql://user:s7@db.example/train",
        "source": "https://example.org/data?token=s8",
    }
    tags = {"team": "vision", "api_token": "s9", "upstream": "http://user:s10@example.org/x"}
    with pytest.warns(Warning) as caught:
        warnings.warn("a marker, so that pytest.warns has one even when nothing else warns", UserWarning, stacklevel=2)
        est = trained_run(
            tmp_path / "model",
            store,
            data,
            params=params,
            tags=tags,
            run_name="from postgresql://user:s11@db.example/x",
        )
    run = MlflowClient(store).get_run(est.run_id)
    logged = json.dumps([run.data.params, run.data.tags, run.info.run_name])
    secrets = [f"s{n}" for n in range(1, 12)]
    assert [
        s for s in secrets if f'"{s}"' in logged or f":{s}@" in logged or f"={s}" in logged or f' {s}"' in logged
    ] == []
    p, t = run.data.params, run.data.tags
    assert p["learning_rate"] == "0.5" and p["credentials.value"] == p["aws_access_key_id"] == REDACTED
    assert p["pwd"] == p["ssh_key"] == p["auth.bearer"] == p["headers.Authorization"] == REDACTED
    assert p["database"] == f"postgresql://{REDACTED}@db.example/train"
    assert p["source"] == f"https://example.org/data?token={REDACTED}"
    assert t["team"] == "vision" and t["api_token"] == REDACTED and t["upstream"] == f"http://{REDACTED}@example.org/x"
    assert run.info.run_name == f"from postgresql://{REDACTED}@db.example/x"
    for secret in secrets:
        assert files_containing(tmp_path / "model", f'"{secret}"') == []
    assert not [w for w in caught if "s1" in str(w.message).split()]


def test_credentials_are_cut_from_uris_and_texts():
    assert public_uri("http://admin:pw@host:5000/path?x=1&token=t") == "http://host:5000/path?x=1"
    assert (
        public_uri("postgresql://u:pw@db/mlflow?sslmode=require&password=pw")
        == "postgresql://db/mlflow?sslmode=require"
    )
    assert public_uri("sqlite:////tmp/store.db") == "sqlite:////tmp/store.db"
    assert (
        scrub("API request to http://u:pw@h/api failed; Authorization: Bearer abc")
        == f"API request to http://{REDACTED}@h/api failed; Authorization: Bearer {REDACTED}"
    )


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """A real ``mlflow server --app-name basic-auth`` whose admin password is SECRET."""
    root = tmp_path_factory.mktemp("auth-server")
    config = root / "auth.ini"
    config.write_text(
        f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{root / 'users.db'}\n"
        f"admin_username = admin\nadmin_password = {SECRET}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    server = MlflowServer(
        root,
        args=("--app-name", "basic-auth"),
        env={"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": "k" * 32},
    )
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
def test_credentials_in_a_tracking_uri_work_in_this_process_and_are_written_nowhere(
    auth_server, tmp_path, data, monkeypatch, capfd
):
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    (x, y), (vx, vy) = data
    public = auth_server.uri
    given = public.replace("http://", f"http://admin:{SECRET}@")
    model_dir = tmp_path / "model"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = trained_run(
            model_dir, given, data, params={"store": given}, tags={"origin": given}, run_name=f"run at {given}"
        )
        assert est.tracking_uri == public and est.run_id
        # the same process, the recorded URI (without credentials): they are kept in memory
        with Elistimator.from_disk(model_dir, checkpoint=9, verbose=False) as resumed:  # 9: in the run only
            resumed.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            resumed.train(steps=3).save_ckpt()
            assert resumed.run_id == est.run_id
    out, err = capfd.readouterr()
    assert SECRET not in out + err
    assert [str(w.message) for w in caught if SECRET in str(w.message)] == []
    assert files_containing(model_dir, SECRET) == []
    assert not {name for name in os.environ if name in CREDENTIAL_VARIABLES}  # nothing put in the environment
    # another process gets them from the environment, as MLflow does
    env = {
        **os.environ,
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": SECRET,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path]),
    }
    code = (
        "import sys; sys.path.insert(0, 'tests'); from conftest import blobs, dataset_fn\n"
        "from elistimator_tracking import Elistimator\n"
        f"with Elistimator.from_disk({str(model_dir)!r}, verbose=False) as est:\n"
        "    est.setup(dataset_fn(*blobs(70, 0))); est.train(steps=2).save_ckpt()\n"
        "print('resumed', est.run_id)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parents[1],
        timeout=300,
    )
    assert done.returncode == 0 and f"resumed {est.run_id}" in done.stdout.splitlines(), done.stderr[-2000:]
    assert SECRET not in done.stdout + done.stderr
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
    client = MlflowClient(public)
    run = client.get_run(est.run_id)
    assert run.info.status == "FINISHED" and SECRET not in json.dumps(
        [run.data.params, run.data.tags, run.info.run_name]
    )
    assert stored_steps(client, est.run_id) == [9, 12, 14, 18]
    for step in (9, 12, 14, 18):
        stored_checkpoint(client, est.run_id, step, tmp_path / "artifacts" / str(step))
    assert files_containing(tmp_path / "artifacts", SECRET) == []
    assert np.isfinite(
        Elistimator.from_disk(
            f"runs:/{est.run_id}", tracking=public, verbose=False, cache_dir=tmp_path / "cache"
        ).predict(x=vx)["probabilities"]
    ).all()


@pytest.mark.slow
def test_the_users_own_calls_to_that_host_get_no_credentials_from_the_package(auth_server, tmp_path, data, monkeypatch):
    """The package keeps a URI's credentials for its own calls: a client of the user's, in the same
    process and without credentials of its own, is refused as it would be without the package."""
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    given = auth_server.uri.replace("http://", f"http://admin:{SECRET}@")
    est = trained_run(tmp_path / "model", given, data)
    with pytest.raises(MlflowException) as refused:
        MlflowClient(auth_server.uri).get_run(est.run_id)
    without = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from mlflow import MlflowClient\ntry:\n"
            f"    MlflowClient({auth_server.uri!r}).get_run({est.run_id!r})\n"
            "except Exception as error:\n    print(error.error_code)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert refused.value.error_code == without.stdout.strip() == "UNAUTHENTICATED"
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")  # the user's own credentials work as usual
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
    assert MlflowClient(auth_server.uri).get_run(est.run_id).info.status == "FINISHED"
