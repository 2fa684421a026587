"""Exporters: what ``train_and_evaluate`` runs after each evaluation (tf.estimator's ``exporter.py``).

``LatestExporter`` exports after every evaluation and keeps the newest ``exports_to_keep``;
``FinalExporter`` exports once, after the final evaluation; ``BestExporter`` exports when an
evaluation beats the best one so far by ``compare_fn`` (default: a smaller ``loss``), the best
so far read back from the evaluation's TensorBoard events (``event_file_pattern``) when it
first sees a model directory, so a restarted job does not export a worse model.
"""

from __future__ import annotations

import glob
import inspect
import os
import shutil
from collections.abc import Callable, Mapping
from typing import Any

from .._tf import tf
from ..errors import InvalidValueError


class Exporter:
    """Exports a model after an evaluation (``export(estimator, export_path, checkpoint_path, eval_result,
    is_the_final_export)``); ``name`` is its directory under ``model_dir/export``."""

    @property
    def name(self) -> str:
        return getattr(self, "_name", "exporter")

    def export(
        self,
        estimator: Any,
        export_path: str,
        checkpoint_path: str,
        eval_result: dict[str, Any],
        is_the_final_export: bool,
    ) -> bytes | None:
        raise NotImplementedError


class _SavedModelExporter(Exporter):
    """Writes the SavedModel of ``checkpoint_path`` under ``export_path``."""

    def __init__(self, name: str, serving_input_receiver_fn: Callable | None, assets_extra: Any, as_text: bool):
        if not isinstance(name, str) or not name:
            raise InvalidValueError(f"an exporter's name must be a non-empty string, got {name!r}")
        if serving_input_receiver_fn is None:
            raise InvalidValueError("`serving_input_receiver_fn` must be defined.")
        self._name, self._receiver_fn, self._assets, self._as_text = (
            name,
            serving_input_receiver_fn,
            assets_extra,
            as_text,
        )

    def export(self, estimator, export_path, checkpoint_path, eval_result, is_the_final_export):
        return estimator.export_saved_model(
            export_path, self._receiver_fn, self._assets, self._as_text, checkpoint_path
        )


def _keep_newest(export_path: str, keep: int | None) -> None:
    """Delete all but the ``keep`` newest timestamped exports under ``export_path``."""
    if keep is None or not os.path.isdir(export_path):
        return
    exports = sorted(e for e in os.listdir(export_path) if e.isdigit())
    for old in exports[:-keep]:
        shutil.rmtree(os.path.join(export_path, old), ignore_errors=True)


def _checked_keep(keep: Any) -> int | None:
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep <= 0):
        raise InvalidValueError(f"`exports_to_keep`, if provided, must be a positive number. Got {keep}")
    return keep


class LatestExporter(_SavedModelExporter):
    """Exports after every evaluation, keeping the ``exports_to_keep`` newest SavedModels."""

    def __init__(
        self,
        name: str,
        serving_input_receiver_fn: Callable,
        assets_extra: Any = None,
        as_text: bool = False,
        exports_to_keep: int | None = 5,
    ):
        super().__init__(name, serving_input_receiver_fn, assets_extra, as_text)
        self._keep = _checked_keep(exports_to_keep)

    def export(self, estimator, export_path, checkpoint_path, eval_result, is_the_final_export):
        path = super().export(estimator, export_path, checkpoint_path, eval_result, is_the_final_export)
        _keep_newest(export_path, self._keep)
        return path


class FinalExporter(_SavedModelExporter):
    """Exports once, after the final evaluation."""

    def __init__(self, name: str, serving_input_receiver_fn: Callable, assets_extra: Any = None, as_text: bool = False):
        super().__init__(name, serving_input_receiver_fn, assets_extra, as_text)

    def export(self, estimator, export_path, checkpoint_path, eval_result, is_the_final_export):
        if not is_the_final_export:
            return None
        return super().export(estimator, export_path, checkpoint_path, eval_result, is_the_final_export)


def _loss_smaller(best_eval_result: Mapping[str, Any], current_eval_result: Mapping[str, Any]) -> bool:
    """True when ``current_eval_result`` has the smaller ``loss`` (tf.estimator's default comparison)."""
    for name, result in (("best_eval_result", best_eval_result), ("current_eval_result", current_eval_result)):
        if not result or "loss" not in result:
            raise InvalidValueError(f"{name} cannot be empty or no loss is found in it.")
    return best_eval_result["loss"] > current_eval_result["loss"]


def _check_compare_fn(compare_fn: Any) -> None:
    if compare_fn is None:
        raise InvalidValueError("`compare_fn` must not be None.")
    names = set(inspect.signature(compare_fn).parameters)
    for required in ("best_eval_result", "current_eval_result"):
        if required not in names:
            raise InvalidValueError(f"compare_fn ({compare_fn}) must include {required} argument.")
    extra = sorted(names - {"best_eval_result", "current_eval_result"})
    if extra:
        raise InvalidValueError(f"compare_fn ({compare_fn}) has following not expected args: {extra}")


class BestExporter(_SavedModelExporter):
    """Exports when an evaluation is better than the best one so far (``compare_fn(best_eval_result,
    current_eval_result)``), keeping the ``exports_to_keep`` newest exports."""

    def __init__(
        self,
        name: str = "best_exporter",
        serving_input_receiver_fn: Callable | None = None,
        event_file_pattern: str | None = "eval/*.tfevents.*",
        compare_fn: Callable[..., bool] = _loss_smaller,
        assets_extra: Any = None,
        as_text: bool = False,
        exports_to_keep: int | None = 5,
    ):
        _check_compare_fn(compare_fn)
        super().__init__(name, serving_input_receiver_fn, assets_extra, as_text)
        self._compare, self._pattern, self._keep = compare_fn, event_file_pattern, _checked_keep(exports_to_keep)
        self._model_dir: str | None = None
        self._best: dict[str, Any] | None = None
        self._exported = False

    def export(self, estimator, export_path, checkpoint_path, eval_result, is_the_final_export):
        if self._model_dir != estimator.model_dir and self._pattern:
            self._model_dir = estimator.model_dir
            self._best = self._best_in_events(os.path.join(self._model_dir, self._pattern))
        if self._best is not None and self._exported and not self._better(eval_result):
            return None
        self._best, self._exported = dict(eval_result), True
        path = super().export(estimator, export_path, checkpoint_path, eval_result, is_the_final_export)
        _keep_newest(export_path, self._keep)
        return path

    def _better(self, result: Mapping[str, Any]) -> bool:
        return bool(self._compare(best_eval_result=self._best, current_eval_result=result))

    def _best_in_events(self, pattern: str) -> dict[str, float] | None:
        """The best evaluation the event files matching ``pattern`` hold (None: there are none)."""
        best = None
        for path in sorted(glob.glob(pattern)):
            for event in tf.train.summary_iterator(path):
                result = {v.tag: v.simple_value for v in event.summary.value if v.HasField("simple_value")}
                if result and (best is None or self._compare(best, result)):
                    best = result
        return best
