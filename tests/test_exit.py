"""A script that ends without close(): its run still ends, with the status the way it ended, and what
the store did not take stays in the journal for sync (issue 20, finding 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import dataset_fn, pending, stored_steps, tiny_model_fn
from mlflow import MlflowClient
from mlflow_server import FlakyProxy, MlflowServer

from elistimator_tracking import Elistimator
from elistimator_tracking.errors import ModelDirectoryBusy
from elistimator_tracking.tracking import sync

WORKER = Path(__file__).with_name("exit_worker.py")


def start(tmp_path: Path, store: str, how: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(tmp_path / "model"), store, how, *extra],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_saved(process: subprocess.Popen) -> None:
    line = process.stdout.readline()
    assert line == "saved\n", process.stderr.read()[-3000:] if not line else line


def recorded_run(tmp_path: Path) -> str:
    """The run the model directory names (known once the store answered, at the latest at exit)."""
    return json.loads((tmp_path / "model" / "elistimator.json").read_text())["tracking"]["run_id"]


@pytest.mark.parametrize(
    "how, signal_, status, code",
    [
        ("end", None, "FINISHED", 0),
        ("raise", None, "FAILED", 1),
        ("wait", signal.SIGTERM, "KILLED", 128 + signal.SIGTERM),
        ("wait", signal.SIGINT, "KILLED", -signal.SIGINT),
    ],
)
def test_a_run_the_script_never_closed_ends_at_exit(tmp_path, tracking_store, how, signal_, status, code):
    process = start(tmp_path, tracking_store, how)
    wait_saved(process)
    if signal_ is not None:
        process.send_signal(signal_)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err[-3000:]  # after Ctrl-C: by SIGINT, as CPython's own
    run_id = recorded_run(tmp_path)
    run = MlflowClient().get_run(run_id)
    assert run.info.status == status
    assert stored_steps(MlflowClient(), run_id) == [4]  # the last checkpoint arrived
    assert (run.data.tags.get("elistimator.error") or "").startswith(
        {
            "FAILED": "RuntimeError: the script failed",
            "KILLED": "SIGTERM" if signal_ == signal.SIGTERM else "KeyboardInterrupt",
        }.get(status, "")
    )


def test_sys_exit_with_a_code_outside_a_with_block_ends_the_run_killed(tmp_path, tracking_store):
    """Before: the script exited 3 and its run ended FINISHED with no error tag (the interpreter's exit
    handlers never see the SystemExit); now KILLED, as inside a ``with`` block."""
    process = start(tmp_path, tracking_store, "exit3")
    wait_saved(process)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 3, err[-3000:]
    run = MlflowClient().get_run(recorded_run(tmp_path))
    assert run.info.status == "KILLED"
    assert run.data.tags.get("elistimator.error") == "SystemExit"


@pytest.mark.parametrize("when", ["before exit", "while packaging at exit"])
def test_ctrl_c_ends_the_run_killed_and_the_process_by_sigint_when_a_logged_model_is_packaged_at_exit(
    tmp_path, tracking_store, when
):
    """The checkpoint's logged model is still being packaged when the interpreter exits. Ctrl-C before the
    exit (during the script), or while it is being packaged: the run ends KILLED, and the process dies by
    SIGINT as CPython's own Ctrl-C does (the shell's exit status 130). Before: exit status 1 (packaging
    at exit reset CPython's record of the unhandled KeyboardInterrupt), and a Ctrl-C during the packaging
    left the run FINISHED with exit status 0."""
    process = start(tmp_path, tracking_store, "wait" if when == "before exit" else "end", "package-at-exit")
    wait_saved(process)
    if when == "before exit":
        process.send_signal(signal.SIGINT)
    assert process.stdout.readline() == "packaging at exit\n"
    if when != "before exit":
        process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGINT, err[-3000:]
    run_id = recorded_run(tmp_path)
    run = MlflowClient().get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags.get("elistimator.error") == "KeyboardInterrupt"
    assert stored_steps(MlflowClient(), run_id) == [4]


@pytest.mark.slow
def test_an_exit_the_store_missed_is_marked_by_sync(tmp_path):
    server = MlflowServer(tmp_path / "server").start()
    proxy = FlakyProxy(server.port)
    try:
        process = start(tmp_path, proxy.uri, "stdin")
        wait_saved(process)
        proxy.down()  # the script exits while the store does not answer
        _, err = process.communicate("\n", timeout=180)
        assert process.returncode == 0 and "could not be delivered" in err, err[-3000:]
        run_id = recorded_run(tmp_path)
        assert MlflowClient(server.uri).get_run(run_id).info.status == "RUNNING"
        proxy.up()
        assert pending(sync(tmp_path / "model")) == {proxy.uri: 0}
        assert MlflowClient(server.uri).get_run(run_id).info.status == "FINISHED"
    finally:
        proxy.close()
        server.stop()


def test_a_second_writer_gets_the_busy_error_not_tracking_off(tmp_path, data):
    (x, y), (vx, vy) = data
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False) as first:
        first.setup(dataset_fn(x, y), dataset_fn(vx, vy))
        first.train().save_ckpt()
        second = Elistimator.from_disk(tmp_path / "model", verbose=False)
        second.predict(x=vx)  # reading needs no lock
        with pytest.raises(ModelDirectoryBusy, match=rf"{os.getpid()}"):
            second.setup(dataset_fn(x, y))
        with pytest.raises(ModelDirectoryBusy):
            sync(tmp_path / "model")
        second.close()
