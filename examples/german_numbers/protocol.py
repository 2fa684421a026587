"""The NALU paper's language-to-number protocol on German number words, for any value model.

Train on the paper's split of 0..1000 (``morphemes.paper_split``), keep the checkpoint
with the lowest validation error, then measure every set: train, validation, test, and
three sets beyond the training range, 1,000 numbers from each order of magnitude
1,001..9,999, 10,000..99,999 and 100,000..999,999 (the same numbers for every model and
seed). The measurements go to the model's MLflow run as metrics ``<set>/<metric>``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tensorflow.compat.v1 as tf
from mlflow import MlflowClient
from mlflow.entities import Metric
from morphemes import encode, paper_split

from elistimator_tracking import Elistimator, named_input

BEYOND = {"1,001..9,999": (1_001, 9_999), "10,000..99,999": (10_000, 99_999), "100,000..999,999": (100_000, 999_999)}
BEYOND_SIZE = 1000
BEYOND_SEED = 2018  # fixed: every model and seed is measured on the same numbers
METRIC_NAMES = {"1,001..9,999": "beyond_1e3", "10,000..99,999": "beyond_1e4", "100,000..999,999": "beyond_1e5"}


def beyond_sets() -> dict[str, np.ndarray]:
    """1,000 distinct numbers from each order of magnitude above the training range."""
    rng = np.random.default_rng(BEYOND_SEED)
    return {
        name: np.sort(rng.choice(np.arange(low, high + 1), BEYOND_SIZE, replace=False))
        for name, (low, high) in BEYOND.items()
    }


def all_sets(seed: int) -> dict[str, np.ndarray]:
    """The paper's train / validation / test numbers for ``seed``, then the sets beyond 1,000."""
    return {**paper_split(seed), **beyond_sets()}


def input_fn(numbers: np.ndarray, batch_size: int, name: str, repeat: bool = False):
    """Encoded words of ``numbers`` in their order (no shuffling: training uses whole-set batches),
    called ``name`` in the MLflow run's datasets."""
    features = encode(numbers)

    def make():
        dataset = tf.data.Dataset.from_tensor_slices(features)
        return (dataset.repeat() if repeat else dataset).batch(batch_size)

    return named_input(make, name)


def _predict(estimator: Elistimator, numbers: np.ndarray) -> np.ndarray:
    return np.concatenate([b["value"] for b in estimator.predict(input_fn=input_fn(numbers, 1024, "predicted"))])


def measure(estimator: Elistimator, numbers: np.ndarray) -> dict[str, float]:
    """Mean absolute error, share exactly right (rounded), mean relative error on ``numbers``."""
    predicted = _predict(estimator, numbers)
    error = np.abs(predicted.astype(np.float64) - numbers)
    return {
        "mean_absolute_error": float(error.mean()),
        "exact": float(np.mean(np.round(predicted) == numbers)),
        "relative_error": float(np.mean(error / np.maximum(numbers, 1))),
    }


def check_budget(parser: argparse.ArgumentParser, steps: int, checkpoints: int) -> None:
    """``steps`` must split into ``checkpoints`` equal parts (so the logged ``steps`` is what runs)."""
    if checkpoints < 1 or steps < checkpoints or steps % checkpoints:
        parser.error(f"--steps ({steps}) must be a multiple of --checkpoints ({checkpoints}), which is at least 1")


def run(
    model_fn: Callable,
    params: dict,
    seed: int,
    model_dir: Path,
    *,
    experiment: str,
    steps: int,
    checkpoints: int,
    verbose: bool,
    register_as: str | None = None,
    examples: Sequence[int] = (),
) -> dict:
    """Train ``model_fn`` on the paper's split (``seed``) and measure every set; one MLflow run.

    ``params`` are logged as the run's params and passed to ``model_fn`` with ``seed`` added;
    the run is named after the model directory (as TensorBoard names its curves). Returns
    ``{'sets': {set: metrics}, 'best_step', 'run_id', 'version', 'tracking_uri', 'seconds',
    'examples': the best checkpoint's values for ``examples``}``.
    """
    started = time.perf_counter()
    sets = all_sets(seed)
    train = sets["train"]
    with Elistimator(
        model_fn,
        model_dir,
        params={**params, "seed": seed},
        experiment=experiment,
        run_name=Path(model_dir).name,
        verbose=verbose,
        summary_every_n_steps=50,
    ) as estimator:
        estimator.setup(
            input_fn(train, len(train), "morphemes-train", repeat=True),
            input_fn(sets["validation"], 1024, "morphemes-validation"),
        )
        for _ in range(checkpoints):
            estimator.train(steps // checkpoints).validate()
            estimator.save_ckpt()
        estimator.restore_best_ckpt(metric="mean_absolute_error", mode="min")
        results = {name: measure(estimator, numbers) for name, numbers in sets.items()}
        predicted = _predict(estimator, np.array(examples, np.int64)) if len(examples) else np.zeros(0)
        version = (
            estimator.register_best(register_as, metric="mean_absolute_error", mode="min") if register_as else None
        )
        best_step, run_id, tracking_uri = estimator.global_step, estimator.run_id, estimator.tracking_uri
    if run_id is not None:
        _log_results(tracking_uri, run_id, results, best_step)
    return {
        "sets": results,
        "best_step": best_step,
        "run_id": run_id,
        "version": version,
        "tracking_uri": tracking_uri,
        "seconds": time.perf_counter() - started,
        "examples": predicted,
    }


def _log_results(tracking_uri: str, run_id: str, results: dict[str, dict[str, float]], step: int) -> None:
    """Every set's metrics to the (finished) run, as ``test/mean_absolute_error`` and so on.

    Logged through MLflow's client: the Elistimator logs its own validations and
    evaluations, but has no call for metrics computed outside the graph.
    """
    now = int(time.time() * 1000)
    metrics = [
        Metric(f"{METRIC_NAMES.get(name, name)}/{key}", value, now, step)
        for name, values in results.items()
        for key, value in values.items()
    ]
    MlflowClient(tracking_uri).log_batch(run_id, metrics=metrics)
