"""MLflow schemas from the input signature: a run's datasets, and a registered version's signature.

Both are tensor schemas (``TensorSpec`` by feature name, ``-1`` for a dimension of any size),
so the run page, the registry and ``mlflow models serve`` show and check what the model
takes. A version's input example is synthetic (zeros, or empty strings, of the signature's
shapes with one example): a registered model never carries a row of its training data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.models import ModelSignature
from mlflow.types.schema import Schema, TensorSpec

from ..datasets import DataDescription, source_of
from .run_info import scrub

IN_MEMORY = "in-memory"  # the source of data a pipeline holds as arrays (or makes with code)


def tensor_schema(features: Sequence[Mapping[str, Any]]) -> Schema:
    """``Feature.to_json()`` dicts as a schema of named tensors."""
    return Schema([TensorSpec(_numpy_dtype(f["dtype"]), _dims(f["shape"]), name=str(f["key"])) for f in features])


def dataset_fields(description: DataDescription) -> dict[str, str]:
    """The fields of an MLflow dataset (``mlflow.entities.Dataset``) for ``description``."""
    source = source_of(description)
    schema = {"mlflow_tensorspec": {"features": tensor_schema(description.features).to_json(), "targets": None}}
    profile = {
        "features": len(description.features),
        "files": description.file_count,
        "digest": "pipeline ops, captured arrays, file sizes and times (elistimator)",
    }
    return {
        "name": scrub(description.name),
        "digest": description.digest,
        "source_type": "local" if source else IN_MEMORY,
        "source": json.dumps(
            {
                "uri": scrub(source) if source else IN_MEMORY,
                **({"files": list(description.files)} if len(description.files) > 1 else {}),
            }
        ),
        "schema": json.dumps(schema),
        "profile": json.dumps(profile),
    }


def model_signature(model_dir: Path) -> tuple[ModelSignature | None, dict[str, np.ndarray] | None]:
    """The signature of the model in ``model_dir`` (a one-checkpoint model directory) and its input
    example: the features its PredictSpec needs, and its outputs (shapes and dtypes from
    predicting the example). ``(None, None)`` without a PredictSpec or when a needed feature's
    rank is unknown (a tensor schema cannot say "any rank")."""
    from .. import Elistimator

    with Elistimator.from_disk(model_dir, tracking=False, verbose=False) as model:
        inputs = model.prediction_features
        if not inputs or any(f["shape"] is None for f in inputs):
            return None, None
        example = {
            str(f["key"]): np.full(
                [1 if d is None else d for d in f["shape"]], _blank(f["dtype"]), dtype=_numpy_dtype(f["dtype"])
            )
            for f in inputs
        }
        outputs = model.predict(**example)
    output_schema = Schema(
        [
            TensorSpec(_output_dtype(value), (-1, *np.shape(value)[1:]), name=str(name))
            for name, value in outputs.items()
        ]
    )
    return ModelSignature(inputs=tensor_schema(inputs), outputs=output_schema), example


def _output_dtype(value: Any) -> np.dtype:
    dtype = np.asarray(value).dtype
    return np.dtype(object) if dtype.kind in "USO" else dtype


def _blank(dtype: str) -> Any:
    return "" if dtype == "string" else 0


def _numpy_dtype(dtype: str) -> np.dtype:
    return np.dtype(object) if dtype == "string" else np.dtype(dtype)


def _dims(shape: Sequence[int | None] | None) -> tuple[int, ...]:
    return (-1,) if shape is None else tuple(-1 if d is None else int(d) for d in shape)
