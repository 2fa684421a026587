"""Every MLflow name is spelled once, in ``tracking/names.py``: no other module of the package
writes a tag key, a metric prefix, an artifact path or a logged-model name of its own."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import elistimator_tracking
from elistimator_tracking.tracking import names

PACKAGE = Path(elistimator_tracking.__file__).parent
NAMES = PACKAGE / "tracking" / "names.py"
#: artifact paths and logged-model values that are also plain words elsewhere (a folder of the model
#: directory, an argument): only these modules may spell them, with that other meaning
OTHER_MEANINGS = {
    ("metadata.py", "source"),  # an export's origin in elistimator.json
    ("tracking/schemas.py", "source"),  # an MLflow dataset's field
    ("cli.py", "source"),  # the download command's argument
}


def guarded_names() -> set[str]:
    """The values ``names.py`` gives its tag keys, artifact paths and logged-model type. (A metric
    prefix is guarded as ``<prefix>/``: the bare words name data roles and folders too; and
    ``checkpoints`` and ``model_dir`` name the model directory's folder and argument everywhere.)"""
    common = {names.LEGACY_CHECKPOINT_ARTIFACTS, names.MODEL_DIR_ARTIFACT}
    return {
        value
        for key, value in vars(names).items()
        if isinstance(value, str)
        and value not in common
        and (key.endswith("_TAG") or key.endswith("_ARTIFACTS") or key == "LOGGED_MODEL_TYPE")
    }


def literals(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):  # an f-string's constant parts
            for part in node.values:
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    yield node.lineno, part.value


def test_no_module_but_names_spells_an_mlflow_name():
    known = guarded_names()
    prefix = re.compile(rf"^({'|'.join(names.PREFIXES)})/")
    tag_like = re.compile(r"^elistimator\.[a-z_]+(\.[a-z_]+)*$")  # a tag key of ours (mlflow.* are module names too)
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if path == NAMES:
            continue
        for line, value in literals(path):
            if (relative, value) in OTHER_MEANINGS:
                continue
            if value in known or prefix.match(value) or (tag_like.match(value) and value != "elistimator.json"):
                found.append(f"{relative}:{line} spells {value!r}")
    assert not found, "use the constant of tracking/names.py instead:\n" + "\n".join(found)


def test_a_metric_name_splits_into_its_prefix_and_metric():
    assert names.split_metric("validation/accuracy") == ("validation", "accuracy")
    assert names.split_metric("evaluation/test/loss") == ("evaluation", "test/loss")
    assert names.split_metric("custom/loss") == (None, "custom/loss") and names.split_metric("loss") == (None, "loss")
    assert names.metric(names.VALIDATION, "loss") == "validation/loss"
    assert names.validation_metrics(["validation/loss", "train/loss", "validation/a/b"]) == {
        "loss": "validation/loss",
        "a/b": "validation/a/b",
    }
