"""The ``elistimator`` command against a real SQLite store, its answers checked against the values
validate() returned; failures as a user sees them, from the real console script."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import best_of, dataset_fn, fit_targets, target_model_fn, targets, tiny_model_fn, zero_targets
from mlflow import MlflowClient

from elistimator_tracking import Elistimator
from elistimator_tracking.cli import main
from elistimator_tracking.tracking.mlflow_tracker import MlflowTracker

SCRIPT = Path(sys.executable).parent / "elistimator"
COURSES = {"steady": (1.5, -0.5, 3.0, -2.0, 1.0), "jumpy": (2.1, 0.4, 1.2)}  # all losses and w values differ


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """Two finished runs in a store of their own (MLFLOW_TRACKING_URI names another): every command
    must be pointed at it with --tracking-uri."""
    root = tmp_path_factory.mktemp("cli")
    store = f"sqlite:///{root / 'store.db'}"
    runs = {}
    for name, course in COURSES.items():
        with Elistimator(
            target_model_fn,
            root / name,
            params={"schedule": name},
            verbose=False,
            tracking=store,
            experiment="cli-values",
            run_name=name,
        ) as est:
            est.setup(targets(course[0]), zero_targets)
            returned = fit_targets(est, course)
        recorded = json.loads((root / name / "elistimator.json").read_text())["tracking"]  # known after close
        runs[name] = SimpleNamespace(returned=returned, run_id=recorded["run_id"])
    return SimpleNamespace(store=store, runs=runs, root=root)


def run_cli(experiment, *argv: str) -> str:
    """The command's stdout (it must succeed); --tracking-uri goes to the experiment's store."""
    return io_of([*argv, "--tracking-uri", experiment.store])


def table(text: str):
    """The rows of a printed table as dicts (columns are separated by two or more spaces)."""
    lines = text.split("\n\n")[0].splitlines()
    header = re.split(r"\s{2,}", lines[0].strip())
    return [dict(zip(header, re.split(r"\s{2,}", line.strip()), strict=False)) for line in lines[2:]]


@pytest.mark.parametrize("mode", ["min", "max"])
def test_runs_shows_the_best_and_last_values_sorted_by_the_best(experiment, mode):
    rows = table(run_cli(experiment, "runs", "cli-values", "--sort-by", "loss", "--mode", mode))
    pick = min if mode == "min" else max
    expected = {}
    for name, run in experiment.runs.items():
        losses, ws = [m["loss"] for m in run.returned.values()], [m["w"] for m in run.returned.values()]
        expected[name] = {
            "run": name,
            "id": run.run_id[:8],
            "status": "FINISHED",
            "schedule": name,
            "best loss": f"{pick(losses):.4g}",
            "last loss": f"{losses[-1]:.4g}",
            "best w": f"{min(ws):.4g}",  # not the sorting metric: by mode auto (w is no accuracy-like name)
            "last w": f"{ws[-1]:.4g}",
        }
    order = sorted(
        expected, key=lambda n: pick(m["loss"] for m in experiment.runs[n].returned.values()), reverse=mode == "max"
    )
    assert rows == [expected[name] for name in order]


@pytest.mark.parametrize("metric, mode", [("loss", "min"), ("w", "max"), ("loss", "max")])
def test_best_names_the_best_run_and_checkpoint(experiment, metric, mode):
    candidates = {
        (name, step): metrics[metric] for name, run in experiment.runs.items() for step, metrics in run.returned.items()
    }
    name, step = best_of({key: {metric: value} for key, value in candidates.items()}, metric, mode)
    run_id = experiment.runs[name].run_id
    assert run_cli(experiment, "best", "cli-values", "--metric", metric, "--mode", mode).splitlines() == [
        f"best run: {name} ({run_id})",
        f"checkpoint: step {step}, validation {metric} = {candidates[name, step]:.6g} ({mode})",
        f"source: runs:/{run_id}  (Elistimator.from_disk('runs:/{run_id}', checkpoint={step}))",
    ]


def test_register_and_download_take_the_best_checkpoint(experiment, tmp_path, request):
    name, steady = request.node.name, experiment.runs["steady"]
    expected = best_of(steady.returned, "w", "max")
    assert (
        run_cli(experiment, "register", steady.run_id, name, "--metric", "w", "--mode", "max")
        == f"registered models:/{name}/1 (@champion) from run {steady.run_id}\n"
    )
    version = MlflowClient(experiment.store).get_model_version_by_alias(name, "champion")
    assert version.tags["elistimator.step"] == str(expected) and version.run_id == steady.run_id
    for checkpoint, step in (("best", best_of(steady.returned)), ("latest", max(steady.returned)), ("6", 6)):
        destination = tmp_path / checkpoint
        run_cli(experiment, "download", f"runs:/{steady.run_id}", str(destination), "--checkpoint", checkpoint)
        with Elistimator.from_disk(destination, verbose=False, tracking=False) as est:
            assert est.global_step == step
            assert est.checkpoints[step]["metrics"] == steady.returned[step]


def test_download_of_a_registered_version_from_a_named_store(experiment, tmp_path, request):
    steady = experiment.runs["steady"]
    run_cli(experiment, "register", steady.run_id, request.node.name)
    run_cli(experiment, "download", f"models:/{request.node.name}@champion", str(tmp_path / "champion"))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["runs", "no-such-experiment"], "no experiment 'no-such-experiment'"),
        (["best", "no-such-experiment"], "no experiment 'no-such-experiment'"),
        (["register", "0123456789abcdef0123456789abcdef", "m"], "there is no run"),
        (["download", "models:/nothing@champion", "out"], "is not in the Model Registry"),
        (["download", "nonsense", "out"], "is not a model source"),
        (["sync", "no-such-dir"], "does not exist"),
    ],
)
def test_failures_exit_1_with_one_clear_line(argv, message, capsys, tmp_path, monkeypatch, tracking_store):
    monkeypatch.chdir(tmp_path)
    MlflowClient(tracking_store).search_experiments()  # the store exists (commands never create one)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith(f"elistimator {argv[0]}: error: ")


def test_sync_delivers_what_a_model_directory_kept(tmp_path, data, capsys, tracking_store):
    (x, y), _ = data
    tracker = MlflowTracker("notascheme://typo", start_timeout=2, close_timeout=2)
    with pytest.warns(UserWarning):
        with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=tracker) as est:
            est.setup(dataset_fn(x, y))
            est.train().save_ckpt()
    assert main(["sync", str(tmp_path / "model"), "--tracking-uri", tracking_store]) == 0
    assert capsys.readouterr().out == f"{tracking_store}: all delivered\n"


def test_every_command_has_help(capsys):
    for command in ("runs", "best", "register", "download", "sync"):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: elistimator {command}") and "--tracking-uri" in out


def test_the_console_script_fails_with_one_line(tmp_path):
    """The installed ``elistimator`` in real processes (side by side): against a fresh default
    store (MLflow logs its table creation at INFO), and with a malformed source."""
    # as in a user's shell: importing the package set TF_CPP_MIN_LOG_LEVEL in this process only
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "TF_CPP_MIN_LOG_LEVEL")}
    commands = {
        "register": (
            ["register", "0123456789abcdef0123456789abcdef", "m"],
            f"there is no MLflow store at sqlite:///{tmp_path / 'mlflow.db'}",
        ),
        "download": (["download", "nonsense", "out"], "'nonsense' is not a model source"),
    }
    processes = {
        name: subprocess.Popen(
            [str(SCRIPT), *argv], cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for name, (argv, _) in commands.items()
    }
    for name, process in processes.items():
        out, err = process.communicate(timeout=180)
        assert process.returncode == 1 and out == "", (name, out, err)
        assert err.count("\n") == 1 and err.startswith(f"elistimator {name}: error: "), (name, err)
        assert commands[name][1] in err, (name, err)
    assert not (tmp_path / "mlflow.db").exists()  # the default store was not there: none is created


def test_runs_prints_the_experiment_link_in_the_model_training_view(experiment):
    experiment_id = MlflowClient(experiment.store).get_experiment_by_name("cli-values").experiment_id
    lines = run_cli(experiment, "runs", "cli-values").split("\n\n")[1].splitlines()
    assert lines == [f"MLflow UI: http://127.0.0.1:5000/#/experiments/{experiment_id}?workflowType=machine_learning"]


def test_runs_says_when_no_params_differ(tmp_path):
    store = f"sqlite:///{tmp_path / 'store.db'}"
    for name in ("a", "b"):
        with Elistimator(
            target_model_fn,
            tmp_path / name,
            params={"same": 1},
            verbose=False,
            tracking=store,
            experiment="alike",
            run_name=name,
        ) as est:
            fit_targets(est, [1.0])
    out = io_of(["runs", "alike", "--tracking-uri", store])
    assert "no params differ between these 2 runs" in out.split("\n\n")[1].splitlines()
    assert {row["same"] for row in table(out)} == {"1"}


def test_register_leaves_the_champion_on_a_better_version_unless_forced(experiment, request):
    name, steady, jumpy = request.node.name, experiment.runs["steady"], experiment.runs["jumpy"]
    better, worse = sorted((steady, jumpy), key=lambda r: min(m["loss"] for m in r.returned.values()))
    run_cli(experiment, "register", better.run_id, name)
    out = run_cli(experiment, "register", worse.run_id, name).splitlines()
    assert out[0] == f"registered models:/{name}/2 from run {worse.run_id}"
    assert out[1].startswith(f"@champion stays on version 1 of {name!r}: its validation/loss")
    assert out[1].endswith("(min; a tie keeps the current one); --force moves it anyway")  # the flag, not force=True
    assert (
        run_cli(experiment, "register", worse.run_id, name, "--force")
        == f"registered models:/{name}/3 (@champion) from run {worse.run_id}\n"
    )
    assert MlflowClient(experiment.store).get_model_version_by_alias(name, "champion").version == 3


def io_of(argv) -> str:
    import io
    from contextlib import redirect_stdout

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


# -- what a newcomer tripped on (issue 20) ---------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["runs", "mnist"],
        ["best", "mnist"],
        ["register", "6f012829", "m"],
        ["download", "runs:/6f012829", "out"],
        ["runs", "mnist", "--tracking-uri", "sqlite:///nosuch/mlflow.db"],
        ["runs", "mnist", "--tracking-uri", "nosuch"],
    ],
)
def test_commands_create_no_store_directory_or_file(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # MLflow's default: sqlite:///mlflow.db here
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"elistimator {argv[0]}: error: there is no MLflow store at ") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_the_run_ids_runs_prints_work_in_every_command(experiment, tmp_path, request):
    printed = {row["run"]: row["id"] for row in table(run_cli(experiment, "runs", "cli-values"))}
    steady = experiment.runs["steady"]
    assert printed["steady"] == steady.run_id[:8]
    assert (
        run_cli(experiment, "register", printed["steady"], request.node.name)
        == f"registered models:/{request.node.name}/1 (@champion) from run {printed['steady']}\n"
    )
    assert (
        MlflowClient(experiment.store).get_model_version_by_alias(request.node.name, "champion").run_id == steady.run_id
    )
    run_cli(experiment, "download", f"runs:/{printed['steady']}", str(tmp_path / "model"), "--checkpoint", "latest")
    with Elistimator.from_disk(
        f"runs:/{printed['jumpy']}", tracking=experiment.store, verbose=False, cache_dir=tmp_path / "cache"
    ) as est:
        assert est.global_step == max(experiment.runs["jumpy"].returned)


def test_a_run_id_prefix_several_runs_share_is_refused_naming_them(tmp_path, capsys):
    store = f"sqlite:///{tmp_path / 'store.db'}"
    client = MlflowClient(store)
    experiment = client.create_experiment("prefixes")
    by_first = {}
    while True:  # at most 17 runs: two share their first character
        run_id = client.create_run(experiment).info.run_id
        if run_id[0] in by_first:
            break
        by_first[run_id[0]] = run_id
    assert main(["register", run_id[0], "m", "--tracking-uri", store]) == 1
    err = capsys.readouterr().err
    assert f"{run_id[0]!r} is the start of several run ids in {store}" in err
    assert by_first[run_id[0]] in err and run_id in err and err.count("\n") == 1


def test_a_run_id_prefix_is_looked_up_in_every_page_of_experiments(tmp_path, capsys):
    """The run's experiment is older than a page of experiments (1,000): it is on the last page."""
    store = f"sqlite:///{tmp_path / 'store.db'}"
    client = MlflowClient(store)
    old = client.create_experiment("the-oldest")
    run_id = client.create_run(old).info.run_id
    for n in range(1001):
        client.create_experiment(f"team-{n}")
    assert main(["register", run_id[:8], "m", "--tracking-uri", store]) == 1
    err = capsys.readouterr().err
    # found: what is refused is the run itself (it holds no checkpoint), not its id
    assert f"elistimator register: error: run {run_id} in {store} holds no Elistimator checkpoint" in err, err


@pytest.mark.parametrize(
    "argv",
    [
        ["runs"],
        ["nosuch"],
        ["runs", "x", "--max-runs", "many"],
        ["best", "x", "--mode", "up"],
        ["sync"],
        ["runs", "x", "--no-such-option"],
    ],
)
def test_argument_errors_are_one_line_and_exit_1(argv, capsys):
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and ": error: " in err and "--help)" in err
    assert err.startswith("elistimator runs: " if argv == ["runs"] else "elistimator")


def test_sync_of_a_directory_with_nothing_to_sync_succeeds(tmp_path, data, capsys):
    (x, y), _ = data
    with Elistimator(tiny_model_fn, tmp_path / "model", verbose=False, tracking=False) as est:
        est.setup(dataset_fn(x, y))
        est.train().save_ckpt()
    assert main(["sync", str(tmp_path / "model")]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'model'}: nothing to sync (no undelivered tracking work)\n"


def test_best_with_an_unknown_metric_lists_the_metrics(experiment, capsys):
    assert main(["best", "cli-values", "--metric", "nosuchmetric", "--tracking-uri", experiment.store]) == 1
    err = capsys.readouterr().err
    assert "validation metric 'nosuchmetric'; validation metrics: ['loss', 'w']" in err and err.count("\n") == 1


def test_help_imports_neither_tensorflow_nor_mlflow():
    code = (
        "import sys\nfrom elistimator_tracking.cli import main\ntry:\n    main(['runs', '--help'])\n"
        "except SystemExit:\n    pass\nprint(sorted(m for m in ('tensorflow', 'mlflow') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "[]", done.stderr


def test_downloads_draw_no_progress_bars(experiment, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    steady = experiment.runs["steady"]
    assert (
        main(
            [
                "download",
                f"runs:/{steady.run_id}",
                str(tmp_path / "model"),
                "--tracking-uri",
                experiment.store,
                "--checkpoint",
                "latest",
            ]
        )
        == 0
    )
    assert "Downloading artifacts" not in capsys.readouterr().err


def test_sync_to_a_store_that_is_down_is_one_line_naming_what_is_kept(tmp_path, data, capsys):
    from mlflow_server import free_port

    (x, y), _ = data
    with pytest.warns(UserWarning):
        with Elistimator(
            tiny_model_fn,
            tmp_path / "model",
            verbose=False,
            tracking=MlflowTracker("notascheme://typo", start_timeout=1, close_timeout=1),
        ) as est:
            est.setup(dataset_fn(x, y))
            est.train().save_ckpt()
    store = f"http://127.0.0.1:{free_port()}"
    assert main(["sync", str(tmp_path / "model"), "--tracking-uri", store]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert re.match(
        rf"elistimator sync: error: \d+ operation\(s\) still pending for {store} \(start #1, .*\) because .*"
        rf"Connection refused; they stay in {tmp_path / 'model'}: run sync again",
        err,
    ), err


def test_a_retracted_validation_never_counts_as_the_best(tmp_path):
    """Issue 30, finding 6: training went on from step 6, so the abandoned branch's step-9 validation
    (the lowest loss of all, 0.01) was retracted by a NaN at step 9; every reader must see it as gone."""
    store = f"sqlite:///{tmp_path / 'store.db'}"
    with Elistimator(target_model_fn, tmp_path / "model", verbose=False, tracking=store, experiment="branch") as est:
        fit_targets(est, [2.0, 0.5, 0.1])  # losses 4, 0.25, 0.01 at steps 3, 6, 9
    with pytest.warns(UserWarning, match="dropped"):
        with Elistimator.from_disk(tmp_path / "model", checkpoint=6, verbose=False, tracking=store) as resumed:
            fit_targets(resumed, [0.4])  # step 9 again: loss 0.16
    out = io_of(["runs", "branch", "--tracking-uri", store])
    (row,) = table(out)
    assert (row["best loss"], row["last loss"]) == ("0.16", "0.16")
    best = io_of(["best", "branch", "--tracking-uri", store]).splitlines()
    assert best[1] == "checkpoint: step 9, validation loss = 0.16 (min)"
