"""The package's layers: the core runs without MLflow, importing the package is light, tracking/ has no cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "elistimator_tracking"


def run_python(code: str, tmp_path: Path) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_training_saving_and_restoring_without_tracking_never_imports_mlflow(tmp_path):
    code = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from conftest import blobs, dataset_fn, tiny_model_fn
from elistimator_tracking import Elistimator
(x, y), (vx, vy) = blobs(40, 0), blobs(16, 1)
with Elistimator(tiny_model_fn, {str(tmp_path / "model")!r}, verbose=False, tracking=False,
                 params={{"learning_rate": 0.5}}) as est:
    est.setup(dataset_fn(x, y), dataset_fn(vx, vy), train_saver_args={{"max_to_keep": 1}})
    for _ in range(2):
        est.train().validate()
        est.save_ckpt()
    est.evaluate(dataset_fn(vx, vy))
    est.restore_latest_ckpt().predict(x=vx)
with Elistimator.from_disk({str(tmp_path / "model")!r}, tracking=False, verbose=False) as loaded:
    loaded.setup(dataset_fn(x, y), dataset_fn(vx, vy))
    loaded.train(2)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("mlflow", "optuna")))
"""
    assert run_python(code, tmp_path) == "[]"


def test_importing_the_package_imports_no_mlflow_and_no_optuna(tmp_path):
    code = (
        "import sys, elistimator_tracking, elistimator_tracking.tracking; "
        "print('mlflow' in sys.modules, 'optuna' in sys.modules)"
    )
    assert run_python(code, tmp_path) == "False False"


def test_only_the_sweep_module_imports_optuna():
    importers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if any(
            (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "optuna" for a in node.names))
            or (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "optuna" and not node.level)
            for node in ast.walk(ast.parse(path.read_text()))
        )
    )
    assert all(name.startswith("sweep/") for name in importers if name != "cli.py"), importers
    assert "cli.py" in importers  # register-best-trial, inside its function: --help imports none (below)


def test_importing_the_package_imports_neither_tensorflow_nor_mlflow_until_the_elistimator_is_used(tmp_path):
    code = """
import os, sys, elistimator_tracking
heavy = lambda: sorted(m for m in ("tensorflow", "mlflow") if m in sys.modules)
before = heavy()
assert os.environ["TF_USE_LEGACY_KERAS"] == "1"  # set before TensorFlow can load
from elistimator_tracking import Elistimator, TrainSpec
print(before, heavy())
"""
    assert run_python(code, tmp_path) == "[] ['tensorflow']"


def test_the_command_imports_no_tensorflow_for_help_and_runs(tmp_path):
    code = f"""
import sys
import mlflow
mlflow.set_tracking_uri("sqlite:///{tmp_path / "mlflow.db"}")
mlflow.set_experiment("layers")
with mlflow.start_run(run_name="only"):
    mlflow.log_param("learning_rate", 0.5)
    mlflow.log_metric("validation/loss", 0.25, step=9)
from elistimator_tracking.cli import main
try:
    main(["--help"])
except SystemExit as done:
    assert done.code == 0
assert main(["runs", "layers", "--tracking-uri", mlflow.get_tracking_uri()]) == 0
print(sorted(m for m in ("tensorflow", "tf_keras", "keras", "optuna") if m in sys.modules))
"""
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert output.returncode == 0, output.stderr[-3000:]
    lines = output.stdout.strip().splitlines()
    assert "usage: elistimator" in output.stdout and any(line.startswith("only ") for line in lines)
    assert lines[-1] == "[]"


def test_a_model_loaded_only_to_predict_starts_no_tracker(tmp_path):
    code = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from conftest import blobs, dataset_fn, tiny_model_fn
from elistimator_tracking import Elistimator
(x, y) = blobs(24, 0)
with Elistimator(tiny_model_fn, {str(tmp_path / "model")!r}, verbose=False, tracking=False) as est:
    est.setup(dataset_fn(x, y)).train()
    est.save_ckpt()
with Elistimator.from_disk({str(tmp_path / "model")!r}, verbose=False) as loaded:  # tracking=True
    loaded.predict(x=x[:2])
    loaded.evaluate(dataset_fn(x, y))
print("mlflow" in sys.modules, sorted(os.listdir({str(tmp_path / "model")!r})))
"""
    assert run_python(code, tmp_path) == "False ['.writer.lock', 'checkpoints', 'elistimator.json', 'train']"


def imports_of(module: Path) -> set:
    """The modules of the package ``module`` imports, at module level or inside functions."""
    package = module.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            target = ".".join(base + tuple(filter(None, (node.module or "").split("."))))
            names = [f"{target}.{alias.name}" for alias in node.names]
            found.update(n for n in names if (PACKAGE.parent / (n.replace(".", "/") + ".py")).exists())
            if (PACKAGE.parent / (target.replace(".", "/") + ".py")).exists():
                found.add(target)
    return found


def test_the_tracking_package_has_no_import_cycles():
    modules = {
        ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts): p
        for p in (PACKAGE / "tracking").rglob("*.py")
        if p.name != "__init__.py"
    }
    graph = {name: {m for m in imports_of(path) if m in modules} for name, path in modules.items()}
    visiting, done = set(), set()

    def visit(name, path):
        assert name not in visiting, "import cycle: " + " -> ".join(path + [name])
        if name in done:
            return
        visiting.add(name)
        for target in graph[name]:
            visit(target, path + [name])
        visiting.discard(name)
        done.add(name)

    for name in graph:
        visit(name, [])
    # the bottom: the interface depends on the run record alone, the record and the names on nothing
    assert graph["elistimator_tracking.tracking.base"] == {"elistimator_tracking.tracking.run"}
    assert graph["elistimator_tracking.tracking.run"] == graph["elistimator_tracking.tracking.names"] == set()


def test_no_package_file_is_longer_than_400_lines():
    lengths = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert max(lengths.values()) <= 400, lengths
