"""The ``elistimator`` command: compare runs, find the best checkpoint, register, download, sync.

``register-best-trial`` reads an Optuna study (the ``sweep`` extra), imported only when it runs.

Every command takes ``--tracking-uri`` (default: ``MLFLOW_TRACKING_URI``, else MLflow's
default ``sqlite:///mlflow.db``). Failures print one line to stderr and exit 1.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .criterion import MODES, Criterion
from .errors import InvalidValueError, NotFoundError, PathExistsError, TrackingError


class ArgumentsRefused(InvalidValueError):
    """A command line argparse refuses; reported like every other failure (one line, exit 1)."""

    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise ArgumentsRefused(self.prog, f"{message} (see {self.prog} --help)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except ArgumentsRefused as error:
        print(f"{error.prog}: error: {error}", file=sys.stderr)
        return 1
    if not hasattr(args, "command"):
        parser.print_help()
        return 1
    from mlflow.exceptions import MlflowException

    from .tracking.http_limits import bounded

    _quiet_mlflow_logs()
    from .tracking.run_info import scrub

    try:
        with bounded():  # an unreachable store is an error within seconds, not minutes of retries
            status = args.command(args) or 0
            sys.stdout.flush()
            return status
    except BrokenPipeError:  # the reader closed the pipe (``| head -1``): it has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0
    except Exception as error:  # noqa: BLE001 -- every failure is one line and exit 1
        message = error.message if isinstance(error, MlflowException) else str(error)
        print(
            f"elistimator {args.command_name}: error: "
            f"{scrub(message.splitlines()[0]) if message else type(error).__name__}",
            file=sys.stderr,
        )
        return 1


def _quiet_mlflow_logs() -> None:
    """MLflow's INFO lines (creating a new store's tables, ...) would break the one-line failure promise."""
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="elistimator", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(title="commands")

    def command(name: str, function, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--tracking-uri",
            default=None,
            help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)",
        )
        sub.set_defaults(command=function, command_name=name)
        return sub

    runs = command("runs", _runs, "A table comparing the runs of an experiment: key params, best and last metrics.")
    runs.add_argument("experiment", help="experiment name")
    runs.add_argument("--sort-by", default="loss", help="validation metric to sort by (default: loss)")
    runs.add_argument(
        "--mode", choices=MODES, default="auto", help="min, max, or auto (default: max for accuracy-like names)"
    )
    runs.add_argument("--max-runs", type=int, default=50)

    best = command("best", _best, "The best run and checkpoint of an experiment for a validation metric.")
    best.add_argument("experiment", help="experiment name")
    best.add_argument("--metric", default="loss")
    best.add_argument("--mode", choices=MODES, default="auto")

    register = command("register", _register, "Register a run's best checkpoint in the Model Registry.")
    register.add_argument("run_id")
    register.add_argument("name", help="registered model name")
    register.add_argument("--metric", default="loss")
    register.add_argument("--mode", choices=MODES, default="auto")
    register.add_argument(
        "--alias",
        default="champion",
        help="moves only to a version that beats the alias's current one on --metric (default: champion)",
    )
    register.add_argument("--force", action="store_true", help="move the alias even if the new version is not better")

    sweep = command(
        "register-best-trial",
        _register_best_trial,
        "Register the best checkpoint of a sweep's best trial (an Optuna study run with elistimator_tracking.sweep).",
    )
    sweep.add_argument("study", help="the Optuna study's name")
    sweep.add_argument("name", help="registered model name")
    sweep.add_argument(
        "--storage", required=True, help="the study's Optuna storage (sqlite:///sweep.db, postgresql+psycopg://...)"
    )
    sweep.add_argument(
        "--alias", default="champion", help="moves only to a better version, as for register (default: champion)"
    )
    sweep.add_argument("--force", action="store_true", help="move the alias even if the new version is not better")

    download = command(
        "download",
        _download,
        "Download a checkpoint (runs:/<id> or models:/<name>/<version> or "
        "models:/<name>@<alias>) into a new model directory.",
    )
    download.add_argument("source")
    download.add_argument("destination", type=Path, help="a directory that does not exist yet")
    download.add_argument("--checkpoint", default="best", help="best, latest or a global step (runs only)")
    download.add_argument("--metric", default="loss")
    download.add_argument("--mode", choices=MODES, default="auto")
    download.add_argument(
        "--trust-store",
        action="store_true",
        help="copy it even if its graph holds ops beyond what models need (file I/O, Python calls)",
    )

    sync = command("sync", _sync, "Deliver the tracking work a model directory kept while its store was away.")
    sync.add_argument("model_dir", type=Path)
    sync.add_argument("--timeout", type=float, default=120.0, help="seconds to keep trying (default 120)")
    return parser


def _experiment_runs(client, name: str, max_runs: int):
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        known = [e.name for e in client.search_experiments(max_results=50)]
        raise NotFoundError(f"no experiment {name!r} in {client.tracking_uri}; experiments: {known or 'none'}")
    return client.search_runs([experiment.experiment_id], max_results=max_runs)


def _client(args):
    import mlflow
    from mlflow.tracking import MlflowClient

    from .tracking.store_uri import StoreUri, require_existing

    store = StoreUri.given(args.tracking_uri or mlflow.get_tracking_uri())
    require_existing(store)  # reading never creates a store
    return MlflowClient(store.client_uri)


def _runs(args) -> int:
    from .tracking.history import live_metric
    from .tracking.names import VALIDATION, metric, validation_metrics

    client = _client(args)
    runs = _experiment_runs(client, args.experiment, args.max_runs)
    if not runs:
        print(f"experiment {args.experiment!r} has no runs")
        return 0
    metrics = sorted({short for r in runs for short in validation_metrics(r.data.metrics)})
    if args.sort_by not in metrics:
        raise NotFoundError(
            f"no run of {args.experiment!r} logged {metric(VALIDATION, args.sort_by)}; validation "
            f"metrics: {metrics or 'none'}"
        )
    sort_by = Criterion(args.sort_by, args.mode)
    params, differ = _differing_params(runs)
    rows = []
    for run in runs:
        row = {
            "run": run.info.run_name or "",
            "id": run.info.run_id[:8],
            "status": run.info.status,
            **{p: run.data.params.get(p, "") for p in params},
        }
        best_of_run = None
        for short in metrics:  # the sort metric goes by --mode, the others by auto
            criterion = sort_by if short == args.sort_by else Criterion(short)
            values = [value for _, value in live_metric(client, run.info.run_id, metric(VALIDATION, short))]
            at = criterion.best(dict(enumerate(values)))
            best = values[at] if at is not None else None
            row[f"best {short}"] = _number(best) if best is not None else ""
            row[f"last {short}"] = _number(values[-1]) if values else ""
            if short == args.sort_by:
                best_of_run = best
        sign = 1 if sort_by.direction == "min" else -1
        row["_sort"] = sign * best_of_run if best_of_run is not None else math.inf
        rows.append(row)
    rows.sort(key=lambda r: r["_sort"])
    _print_table(rows, [c for c in rows[0] if c != "_sort"])
    from .tracking.store_uri import StoreUri
    from .tracking.ui import experiment_link

    print()
    if not differ and len(runs) > 1:
        print(f"no params differ between these {len(runs)} runs")
    print(f"MLflow UI: {experiment_link(StoreUri.given(client.tracking_uri).public, runs[0].info.experiment_id)}")
    return 0


def _differing_params(runs) -> tuple[list[str], bool]:
    """The params whose values differ between the runs, at most 6, and True; when none differ (or
    there is one run), the first 6 params and False."""
    names = sorted({p for r in runs for p in r.data.params})
    differing = [p for p in names if len({r.data.params.get(p) for r in runs}) > 1]
    return (differing or names)[:6], bool(differing)


def _number(value: float) -> str:
    return f"{value:.4g}"


def _print_table(rows: list[dict[str, str]], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))


def _best(args) -> int:
    from .checkpoints import best_step
    from .tracking.names import validation_metrics
    from .tracking.resolve import RunCheckpoints

    client = _client(args)
    criterion = Criterion(args.metric, args.mode)
    candidates, runs = [], _experiment_runs(client, args.experiment, 1000)
    for run in runs:
        try:
            index = RunCheckpoints(run.info.run_id, client.tracking_uri).index()
            step = best_step(index, criterion.metric, criterion.mode)
        except LookupError:
            continue  # a run without checkpoints or without that metric
        candidates.append((step, index.metrics(step)[args.metric], run))
    candidates.sort(key=lambda c: c[0])  # among equal values the later step wins
    chosen = criterion.best({i: c[1] for i, c in enumerate(candidates)})
    if chosen is None:
        names = sorted({short for r in runs for short in validation_metrics(r.data.metrics)})
        raise NotFoundError(
            f"no run of {args.experiment!r} has a checkpoint with validation metric {args.metric!r}; "
            f"validation metrics: {names or 'none'}"
        )
    step, value, run = candidates[chosen]
    print(f"best run: {run.info.run_name} ({run.info.run_id})")
    print(f"checkpoint: step {step}, validation {args.metric} = {value:.6g} ({criterion.direction})")
    print(f"source: runs:/{run.info.run_id}  (Elistimator.from_disk('runs:/{run.info.run_id}', checkpoint={step}))")
    return 0


def _register(args) -> int:
    from .tracking.registry import register_best

    version, kept = register_best(
        args.run_id, args.name, args.metric, args.mode, args.alias or None, args.tracking_uri, force=args.force
    )
    alias = f" (@{args.alias})" if args.alias and not kept else ""
    print(f"registered models:/{args.name}/{version}{alias} from run {args.run_id}")
    if kept:
        print(f"{kept}; --force moves it anyway")
    return 0


def _register_best_trial(args) -> int:
    try:
        import optuna
    except ImportError:
        raise TrackingError(
            "register-best-trial reads an Optuna study: pip install 'elistimator_tracking[sweep]'"
        ) from None
    from .sweep import register_best_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=args.study, storage=args.storage)
    except KeyError:
        raise NotFoundError(f"no study {args.study!r} in {args.storage}") from None
    version, kept = register_best_trial(study, args.name, args.alias or None, args.tracking_uri, force=args.force)
    alias = f" (@{args.alias})" if args.alias and not kept else ""
    print(f"registered models:/{args.name}/{version}{alias}: the best checkpoint of study {args.study!r}'s best trial")
    if kept:
        print(kept)
    return 0


def _download(args) -> int:
    from .tracking.resolve import resolve_source

    if args.destination.exists():
        raise PathExistsError(f"{args.destination} exists; give a new directory")
    checkpoint = int(args.checkpoint) if args.checkpoint.isdigit() else args.checkpoint
    path = resolve_source(args.source, checkpoint, args.metric, args.mode, None, args.tracking_uri)
    if not args.trust_store:  # the copy becomes a local model directory, which from_disk trusts
        from .graph_safety import check_model_directory

        check_model_directory(path, args.source)
    destination = args.destination.absolute()
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:  # a whole copy appears at the destination, or nothing
        shutil.copytree(path, partial / "model")
        os.replace(partial / "model", destination)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    print(f"downloaded {args.source} to {args.destination} (load it with Elistimator.from_disk)")
    return 0


def _sync(args) -> int:
    from .tracking import sync

    reports = sync(args.model_dir, args.tracking_uri, args.timeout)
    if not reports:
        print(f"{args.model_dir}: nothing to sync (no undelivered tracking work)")
    for uri, report in reports.items():
        for line in report.quarantined:
            print(f"{uri}: a journal line could not be understood and is kept in quarantine: {line}")
        for what in report.resent:
            print(f"{uri}: sent again from the model directory: {what}")
        for what in report.lost:
            print(f"{uri}: lost (gone from the model directory and never delivered): {what}")
        if report.delivered:
            print(f"{uri}: all delivered")
    pending = [report for report in reports.values() if not report.delivered]
    if pending:
        raise TrackingError(
            "; ".join(
                f"{r.pending} operation(s) still pending for {r.tracking_uri} ({', '.join(r.waiting)}"
                f"{', ...' if r.pending > len(r.waiting) else ''}) because {r.why}"
                for r in pending
            )
            + f"; they stay in {args.model_dir}: run sync again when the store answers"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
