"""A team's MLflow server: PostgreSQL backend store, artifacts proxied by the server
(``mlflow-artifacts:/``), basic-auth logins; many trainings at once, a server restart among them.

The servers are real: PostgreSQL made by ``initdb`` (``PostgresServer``) and ``mlflow server`` on it,
started with the commands docs/deploy.md gives. Without PostgreSQL the tests skip, saying why;
``ELISTIMATOR_REQUIRE_POSTGRES=1`` (``.ci/run`` sets it where PostgreSQL is installed) turns that
skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import dataset_fn, history, pending, stored_steps, tiny_model_fn, train_epochs
from mlflow import MlflowClient
from mlflow_server import MlflowServer

from elistimator_tracking import Elistimator
from elistimator_tracking.tracking import TrackingWarning, sync

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
USER, USER_PASSWORD = "alice", "Alice-Team-Pw-9071"
OTHER, OTHER_PASSWORD = "bob", "Bob-Team-Pw-3318"
ADMIN_PASSWORD = "Admin-Team-Pw-5523"
CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


def files_containing(root: Path, secret: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and not p.is_symlink() and secret.encode() in p.read_bytes()]


@pytest.fixture(scope="module")
def team_server(postgres, tmp_path_factory):
    """``mlflow server`` on PostgreSQL with proxied artifacts (no logins)."""
    server = MlflowServer(tmp_path_factory.mktemp("team-server"), backend=postgres.create_database("mlflow")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def auth_server(postgres, tmp_path_factory):
    """The same server with ``--app-name basic-auth`` (its users in PostgreSQL too) and the users
    alice and bob, created through MLflow's auth API by the admin."""
    root = tmp_path_factory.mktemp("auth-server")
    config = root / "basic_auth.ini"
    config.write_text(
        f"[mlflow]\ndefault_permission = READ\ndatabase_uri = {postgres.create_database('mlflow_auth')}\n"
        f"admin_username = admin\nadmin_password = {ADMIN_PASSWORD}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    server = MlflowServer(
        root,
        backend=postgres.create_database("mlflow_team"),
        args=("--app-name", "basic-auth"),
        env={"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": "k" * 32},
    )
    server.start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        patch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
        from mlflow.server import get_app_client

        for user, password in ((USER, USER_PASSWORD), (OTHER, OTHER_PASSWORD)):
            get_app_client("basic-auth", tracking_uri=server.uri).create_user(user, password)
    yield server
    server.stop()


def as_admin(server: MlflowServer, call):
    """``call(client)`` with MLflow's auth API client of ``server``, logged in as its admin (the
    client reads the credentials from the environment at each request)."""
    from mlflow.server import get_app_client

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        patch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
        return call(get_app_client("basic-auth", tracking_uri=server.uri))


def permission_of_the_user(server: MlflowServer, experiment_id: str) -> str:
    """The user's permission on an experiment, as the server's auth store says (asked by the admin):
    MANAGE when the user's login created it."""
    return as_admin(server, lambda auth: auth.get_user_permission(USER, "experiment", experiment_id).permission)


def train_against(server: MlflowServer, model_dir: Path, experiment: str, data, verbose: bool = False):
    """Two epochs of the tiny model tracked to ``server`` (credentials from the environment).
    Returns what validate() returned by step, the run id, and the tracking warnings' texts."""
    (x, y), (vx, vy) = data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Elistimator(tiny_model_fn, model_dir, verbose=verbose, tracking=server.uri, experiment=experiment) as est:
            est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
            returned = train_epochs(est, 2)  # training goes on whatever the server answers
            run_id = est.run_id
    return returned, run_id, [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]


def client_of(server: MlflowServer, monkeypatch) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", USER_PASSWORD)
    return MlflowClient(server.uri)


# -- restore through the team server ----------------------------------------------------


def test_a_process_that_did_not_train_restores_registers_and_serves_through_proxied_artifacts(
    team_server, tmp_path, data
):
    (x, y), (vx, vy) = data
    predictions = {}
    with Elistimator(
        tiny_model_fn,
        tmp_path / "model",
        verbose=False,
        tracking=team_server.uri,
        params={"learning_rate": 0.05},
        experiment="team-restore",
    ) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy), train_saver_args={"max_to_keep": 1})
        returned = train_epochs(
            est, 3, each=lambda step: predictions.update({step: est.predict(x=vx)["probabilities"]})
        )
        run_id = est.run_id
    client = MlflowClient(team_server.uri)
    assert client.get_run(run_id).info.artifact_uri.startswith("mlflow-artifacts:/")
    assert stored_steps(client, run_id) == [9, 18, 27]
    assert list((team_server.root / "artifacts").rglob("model-9.index"))  # stored by the server, not the client
    best = min(returned, key=lambda step: returned[step]["loss"])
    np.save(tmp_path / "vx.npy", vx)
    script = f"""
import json, mlflow, numpy as np
from elistimator_tracking import Elistimator
from elistimator_tracking.tracking.registry import register_best
vx, cache, answers = np.load({str(tmp_path / "vx.npy")!r}), {str(tmp_path / "cache")!r}, {{}}
with Elistimator.from_disk("runs:/{run_id}", checkpoint="best", cache_dir=cache, verbose=False) as est:
    answers["runs"] = [est.global_step, est.predict(x=vx)["probabilities"].tolist()]
answers["version"] = register_best("{run_id}", "team-model", cache_dir=cache)[0]
with Elistimator.from_disk("models:/team-model@champion", cache_dir=cache, verbose=False) as est:
    answers["champion"] = [est.global_step, est.predict(x=vx)["probabilities"].tolist()]
model = mlflow.pyfunc.load_model("models:/team-model@champion")
answers["pyfunc"] = [None, model.predict({{"x": vx}})["probabilities"].tolist()]
print(json.dumps(answers))
"""
    env = {**os.environ, "MLFLOW_TRACKING_URI": team_server.uri}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert answers.pop("version") == "1"
    for source, (step, probabilities) in answers.items():
        assert step in (None, best), source
        np.testing.assert_allclose(probabilities, predictions[best], rtol=1e-6, err_msg=source)
    (version,) = client.search_model_versions("name = 'team-model'")
    assert version.source.startswith("mlflow-artifacts:/") or version.source.startswith("models:/")


def test_a_backup_of_the_database_and_the_artifacts_restores_the_runs(team_server, postgres, tmp_path, data):
    """docs/deploy.md's backup: ``pg_dump`` first, then the artifacts; restored into another database
    and folder, a new server holds the same run, and ``runs:/`` restores through it."""
    (x, y), (vx, vy) = data
    with Elistimator(
        tiny_model_fn, tmp_path / "model", verbose=False, tracking=team_server.uri, experiment="team-backup"
    ) as est:
        est.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        returned = train_epochs(est, 2)
        expected, run_id = est.predict(x=vx)["probabilities"], est.run_id
    dump = tmp_path / "mlflow.dump"
    subprocess.run(
        [str(postgres.bin_dir / "pg_dump"), "-Fc", "-d", postgres.database_uri("mlflow"), "-f", str(dump)],
        check=True,
        capture_output=True,
    )
    shutil.copytree(team_server.root / "artifacts", tmp_path / "restored" / "artifacts")
    restored_uri = postgres.create_database("mlflow_restored")
    subprocess.run(
        [str(postgres.bin_dir / "pg_restore"), "--no-owner", "-d", restored_uri, str(dump)],
        check=True,
        capture_output=True,
    )
    restored = MlflowServer(tmp_path / "restored", backend=restored_uri).start()
    try:
        client = MlflowClient(restored.uri)
        assert client.get_run(run_id).info.status == "FINISHED"
        assert history(client, run_id, "validation/loss") == [(s, m["loss"]) for s, m in returned.items()]
        with Elistimator.from_disk(
            f"runs:/{run_id}", tracking=restored.uri, verbose=False, cache_dir=tmp_path / "cache"
        ) as loaded:
            assert loaded.global_step == 18
            np.testing.assert_allclose(loaded.predict(x=vx)["probabilities"], expected, rtol=1e-6)
    finally:
        restored.stop()


# -- logins -------------------------------------------------------------------------------


def test_a_user_with_the_right_credentials_tracks_and_the_password_is_written_nowhere(
    auth_server, postgres, tmp_path, data, monkeypatch, capfd
):
    client = client_of(auth_server, monkeypatch)
    returned, run_id, tracking = train_against(auth_server, tmp_path / "model", "team-login", data, verbose=True)
    assert tracking == []
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and permission_of_the_user(auth_server, run.info.experiment_id) == "MANAGE"
    assert history(client, run_id, "validation/loss") == [(s, m["loss"]) for s, m in returned.items()]
    assert stored_steps(client, run_id) == [9, 18]
    out, err = capfd.readouterr()
    assert USER_PASSWORD not in out + err
    for place in (tmp_path / "model", auth_server.root, postgres.data):
        assert files_containing(place, USER_PASSWORD) == [], place


@pytest.mark.parametrize("login", ["wrong", "missing"])
def test_a_refused_login_warns_once_keeps_the_work_and_sync_delivers_it_once(
    login, auth_server, postgres, tmp_path, data, monkeypatch, capfd
):
    wrong = f"not-{USER_PASSWORD}"
    for name in CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    if login == "wrong":
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", wrong)
    model_dir, experiment = tmp_path / "model", f"team-login-{login}"
    returned, _, tracking = train_against(auth_server, model_dir, experiment, data)
    assert len(tracking) == 1 and auth_server.uri in tracking[0] and "401" in tracking[0], "\n".join(tracking)
    assert any(p.stat().st_size for p in (model_dir / "tracking").glob("store-*/journal.jsonl"))
    client = client_of(auth_server, monkeypatch)  # the credentials fixed
    assert client.get_experiment_by_name(experiment) is None
    assert pending(sync(model_dir)) == {auth_server.uri: 0}
    assert pending(sync(model_dir)) == {auth_server.uri: 0}  # again: nothing is sent twice
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert run.info.status == "FINISHED" and permission_of_the_user(auth_server, run.info.experiment_id) == "MANAGE"
    assert history(client, run.info.run_id, "validation/loss") == [(s, m["loss"]) for s, m in returned.items()]
    assert stored_steps(client, run.info.run_id) == [9, 18]
    out, err = capfd.readouterr()
    for secret in (USER_PASSWORD, wrong):
        assert secret not in out + err + "".join(tracking)
        for place in (model_dir, auth_server.root, postgres.data):
            assert files_containing(place, secret) == [], (secret, place)


# -- many trainings at once, the server killed and restarted among them --------------------

WORKERS, STEPS_PER_ROUND, ROUND_SECONDS = 6, 25, 2.0


def rounds_done(out: Path) -> list[list[float]]:
    """The rounds a worker finished so far: ``[step, start, end]`` each."""
    progress = Path(f"{out}.progress")
    return [list(map(float, line.split())) for line in progress.read_text().splitlines()] if progress.exists() else []


def wait_for_rounds(
    outs: list[Path], workers: list[subprocess.Popen], count: int, after: float = 0.0, timeout: float = 300.0
) -> None:
    """Wait until each worker has finished ``count`` rounds that started after ``after``."""
    deadline = time.monotonic() + timeout
    while any(len([r for r in rounds_done(out) if r[1] > after]) < count for out in outs):
        assert all(w.poll() is None for w in workers), [w.returncode for w in workers]
        assert time.monotonic() < deadline, [len(rounds_done(out)) for out in outs]
        time.sleep(0.5)


def timed_search(client: MlflowClient, experiment_id: str) -> float:
    start = time.monotonic()
    assert len(client.search_runs([experiment_id])) == WORKERS
    return time.monotonic() - start


def test_six_trainings_at_once_lose_and_duplicate_nothing_while_the_server_restarts(team_server, tmp_path):
    """Six processes train against the PostgreSQL-backed server; it is killed (SIGKILL) and started
    again while they run. Every run finishes, every validation point and checkpoint is there
    exactly once, and each process trained on while the server was down."""
    stop, outs = tmp_path / "stop", [tmp_path / f"worker-{n}.json" for n in range(WORKERS)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
        "TF_NUM_INTRAOP_THREADS": "1",
    }
    logs = [open(tmp_path / f"worker-{n}.log", "wb") for n in range(WORKERS)]
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "team_worker.py"),
                team_server.uri,
                str(tmp_path / f"model-{n}"),
                "team-load",
                str(STEPS_PER_ROUND),
                str(ROUND_SECONDS),
                str(stop),
                str(out),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for n, (out, log) in enumerate(zip(outs, logs, strict=False))
    ]
    try:
        client = MlflowClient(team_server.uri)
        wait_for_rounds(outs, workers, 3)
        experiment_id = client.get_experiment_by_name("team-load").experiment_id
        latencies = [timed_search(client, experiment_id)]
        down = time.time()
        team_server.stop(signal.SIGKILL)
        wait_for_rounds(outs, workers, 2, after=down)  # they train on while it is down
        team_server.start()
        up = time.time()
        wait_for_rounds(outs, workers, 3, after=up)
        latencies.append(timed_search(client, experiment_id))
        stop.touch()
        for worker in workers:
            worker.wait(timeout=300)
    finally:
        for worker in workers:
            worker.kill() if worker.poll() is None else None
        for log in logs:
            log.close()
    assert [w.returncode for w in workers] == [0] * WORKERS, [
        (tmp_path / f"worker-{n}.log").read_text()[-3000:] for n in range(WORKERS)
    ]
    results = [json.loads(out.read_text()) for out in outs]
    runs = {run.info.run_id: run for run in client.search_runs([experiment_id])}
    assert sorted(runs) == sorted(r["run_id"] for r in results)
    expected = found = duplicated = 0
    for result in results:
        run_id, returned = result["run_id"], {int(s): m for s, m in result["returned"].items()}
        assert runs[run_id].info.status == "FINISHED"
        points = history(client, run_id, "validation/loss")
        assert points == [(s, m["loss"]) for s, m in returned.items()]
        checkpoints = stored_steps(client, run_id)
        assert checkpoints == result["saved"]
        expected += len(returned) + len(result["saved"])
        found += len({s for s, _ in points}) + len(set(checkpoints))
        duplicated += len(points) - len({s for s, _ in points}) + len(checkpoints) - len(set(checkpoints))
        assert [c for c in result["calls"] if down < c[0] and c[1] < up]  # whole train() calls while it was down
    during = [max((e - s for s, e in r["calls"] if s < up and e > down), default=0.0) for r in results]
    outside = [max((e - s for s, e in r["calls"] if e < down or s > up), default=0.0) for r in results]
    print(
        f"\nteam load: {WORKERS} runs, validation points and checkpoints expected {expected}, found {found}, "
        f"lost {expected - found}, duplicated {duplicated}; server down {up - down:.1f} s; longest train() "
        f"call of {STEPS_PER_ROUND} steps while down {max(during):.2f} s (per process "
        f"{', '.join(f'{d:.2f}' for d in during)}), while up {max(outside):.2f} s; search_runs under load "
        f"{', '.join(f'{s:.2f}' for s in latencies)} s; rounds per process "
        f"{', '.join(str(len(r['saved'])) for r in results)}"
    )


def test_an_account_without_permission_warns_once_and_sync_delivers_after_the_grant(
    auth_server, tmp_path, data, monkeypatch
):
    """bob may read alice's experiment but not write to it (HTTP 403); once the admin grants him EDIT,
    ``sync`` delivers his kept run, once."""
    experiment_id = client_of(auth_server, monkeypatch).create_experiment("team-alice-only")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", OTHER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", OTHER_PASSWORD)
    returned, _, tracking = train_against(auth_server, tmp_path / "model", "team-alice-only", data)
    assert len(tracking) == 1 and auth_server.uri in tracking[0] and "HTTP 403" in tracking[0], "\n".join(tracking)
    client = MlflowClient(auth_server.uri)
    assert client.search_runs([experiment_id]) == []
    as_admin(auth_server, lambda auth: auth.grant_user_permission(OTHER, "experiment", experiment_id, "EDIT"))
    assert pending(sync(tmp_path / "model")) == {auth_server.uri: 0}
    (run,) = client.search_runs([experiment_id])
    assert run.info.status == "FINISHED"
    assert history(client, run.info.run_id, "validation/loss") == [(s, m["loss"]) for s, m in returned.items()]
    assert stored_steps(client, run.info.run_id) == [9, 18]
