"""The MLflow pyfunc model of a registered Elistimator checkpoint (MLflow models-from-code).

MLflow loads this file as code, never a pickle: ``load_context`` restores the checkpoint
directory that is stored next to it (``artifacts['model_dir']``) with
``Elistimator.from_disk``, and ``predict`` feeds the PredictSpec's outputs through the
input signature. Input: a dict of arrays by feature name (``{'images': ...}``), a
pandas DataFrame (one column per feature, one row per example), or one array for the
features the outputs need. Output: ``{output name: array}``. A version registered with a
signature (``schemas.py``) has its input checked by MLflow first: a wrong shape or dtype is
refused with MLflow's schema error before ``predict`` runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

from elistimator_tracking.errors import ModelDirectoryError


class ElistimatorPyfunc(PythonModel):
    def load_context(self, context) -> None:
        from elistimator_tracking import Elistimator
        from elistimator_tracking.tracking.names import MODEL_DIR_ARTIFACT

        model_dir = Path(context.artifacts[MODEL_DIR_ARTIFACT])
        if model_dir.is_dir() and not any(model_dir.iterdir()):
            # the packager's skeleton (logged_models.Packager), which MLflow may load while saving it
            # (3.1.4 did, inferring requirements): no checkpoint yet, nothing to restore
            self.estimator = None
            return
        self.estimator = Elistimator.from_disk(model_dir, tracking=False, verbose=False)

    def predict(self, context, model_input: np.ndarray, params=None):
        """``model_input``: a dict, a DataFrame or an array (the hint is one MLflow infers no schema
        from: it then neither validates nor converts the input, and does not ask for type hints)."""
        if self.estimator is None:
            raise ModelDirectoryError("this MLflow model holds no checkpoint (the packager's skeleton)")
        if isinstance(model_input, dict):
            return self.estimator.predict(**{str(k): np.asarray(v) for k, v in model_input.items()})
        if hasattr(model_input, "columns"):  # a pandas DataFrame
            return self.estimator.predict(**{str(c): _stacked(model_input[c]) for c in model_input.columns})
        return self.estimator.predict(np.asarray(model_input))


def _stacked(column) -> np.ndarray:
    values = list(column)
    return np.stack([np.asarray(v) for v in values]) if values and np.ndim(values[0]) else np.asarray(values)


set_model(ElistimatorPyfunc())
