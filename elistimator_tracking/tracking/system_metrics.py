"""System metrics of a run (``Elistimator(system_metrics=True)``), sampled by MLflow's own monitors.

MLflow's ``SystemMetricsMonitor`` sends straight to the store and stops at the first request
the store does not answer; here the same monitors (CPU and memory, disk, network, and an
NVIDIA or AMD GPU when one is present) are sampled on a daemon thread and their averages go
into the tracking journal, like every other metric: delivered in order, kept while the store
is down, replayed by ``sync``. Names and intervals are MLflow's: ``system/<metric>``, a sample
every ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` seconds (default 10), averaged over
``MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING`` samples (default 1); the step counts the
logged points.

Off by default, for what it adds to the store rather than CPU (a sample costs about 0.6 ms,
docs/performance.md): 8 more metric series per run (about 2,900 points an hour), a thread
and store writes that most runs on a known machine do not need; MLflow keeps it off too.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping

from mlflow.environment_variables import (
    MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING,
    MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL,
)
from mlflow.system_metrics.metrics.base_metrics_monitor import BaseMetricsMonitor

from ..errors import TrackingWarning
from .names import SYSTEM, metric

DEFAULT_INTERVAL = 10.0


def monitors() -> list[BaseMetricsMonitor]:
    """MLflow's monitors for this machine: CPU/memory, disk, network, and a GPU when present."""
    from mlflow.system_metrics.metrics.cpu_monitor import CPUMonitor
    from mlflow.system_metrics.metrics.disk_monitor import DiskMonitor
    from mlflow.system_metrics.metrics.network_monitor import NetworkMonitor

    found: list[BaseMetricsMonitor] = [CPUMonitor(), DiskMonitor(), NetworkMonitor()]
    for gpu in ("gpu_monitor.GPUMonitor", "rocm_monitor.ROCMMonitor"):
        module, name = gpu.split(".")
        try:
            found.append(getattr(__import__(f"mlflow.system_metrics.metrics.{module}", fromlist=[name]), name)())
            break
        except Exception:  # noqa: BLE001 -- no such GPU (or no driver library): not sampled
            continue
    return found


class SystemMetrics:
    """Samples ``monitors()`` until ``stop()``; every aggregate goes to ``log(metrics, step)``."""

    def __init__(self, log: Callable[[Mapping[str, float], int], None]):
        self._log = log
        self._monitors = monitors()
        self.interval = float(MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL.get() or DEFAULT_INTERVAL)
        self.samples = int(MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING.get() or 1)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="elistimator-system-metrics", daemon=True)
        self.step = 0

    def start(self) -> SystemMetrics:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling and wait for the thread (what it sampled since the last point is dropped)."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _sample(self) -> None:
        while not self._stopped.is_set():
            for _ in range(self.samples):
                for monitor in self._monitors:
                    monitor.collect_metrics()
                if self._stopped.wait(self.interval):
                    return
            metrics: dict[str, float] = {}
            for monitor in self._monitors:
                metrics.update(monitor.aggregate_metrics())
                monitor.clear_metrics()
            try:
                self._log({metric(SYSTEM, name): value for name, value in metrics.items()}, self.step)
            except Exception as error:  # noqa: BLE001 -- e.g. the journal's disk is full: sampling ends
                warnings.warn(
                    f"system metrics are no longer sampled: {type(error).__name__}: {error}",
                    TrackingWarning,
                    stacklevel=2,
                )
                return
            self.step += 1
