"""The one place that imports TensorFlow.

TF1 graph code runs on TensorFlow 2.21 through ``tensorflow.compat.v1`` with eager
execution disabled (``tensorflow-gpu==1.15`` has no wheels for current Pythons). The
environment defaults are ``_env.py``'s. When the package chose ``TF_CPP_MIN_LOG_LEVEL=2``,
what TensorFlow 2.21 prints before it reads that setting (absl logs "before
InitializeLog" go straight to stderr) is silenced too: the import runs with file
descriptor 2 pointed at /dev/null, and so does the creation of sessions (device probing
logs, e.g. ``failed call to cuInit`` on machines without a GPU), and so does a first graph run
(what TensorFlow logs the first time a process runs a graph). TensorFlow's notices that
TF1 APIs are deprecated (``tf.layers.dense``, ``dynamic_rnn``, ...) are hidden too: writing
TF1 graph code is this package's premise, so they are not news (``quiet_deprecations``). Set
``TF_CPP_MIN_LOG_LEVEL`` yourself to see all of it.
"""

import contextlib
import logging
import os
import sys
import warnings

from ._env import QUIET as _QUIET


@contextlib.contextmanager
def _stderr_silenced(enabled: bool):
    """Point file descriptor 2 at /dev/null for the duration (C++ writes there directly)."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


with _stderr_silenced(_QUIET):
    import tensorflow as _tf2
    import tensorflow.compat.v1 as tf

    _tf2.config.list_physical_devices()  # probe devices now, quietly, not inside the first model build

tf.disable_eager_execution()


def _first_run_quietly() -> None:
    """Run one op in a throwaway graph with file descriptor 2 silenced: TensorFlow logs a few lines the
    first time a process runs a graph (TensorFlow 2.18: absl's "before InitializeLog" notice and "MLIR
    V1 optimization pass is not enabled"), past ``TF_CPP_MIN_LOG_LEVEL``. 18 ms, once per process."""
    with _stderr_silenced(True), tf.Graph().as_default() as graph:
        one = tf.constant(1.0) + 1.0
        with tf.Session(graph=graph) as session:
            session.run(one)


if _QUIET:
    _first_run_quietly()

#: what TensorFlow's notices of deprecated TF1 APIs say: its own log lines ("From <file>: dynamic_rnn
#: (from tensorflow.python.ops.rnn) is deprecated and will be removed ...") and tf-keras' warnings
#: ("`tf.layers.dense` is deprecated and will be removed in a future version")
DEPRECATION_NOTICE = "is deprecated and will be removed"


class _DeprecationNotices(logging.Filter):
    """Drops TensorFlow's log records that announce a deprecated API; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return DEPRECATION_NOTICE not in record.getMessage()


def quiet_deprecations(enabled: bool) -> None:
    """Hide TensorFlow's deprecation notices of TF1 APIs (``enabled``: the package chose the log level)."""
    if not enabled:
        return
    logging.getLogger("tensorflow").addFilter(_DeprecationNotices())
    warnings.filterwarnings("ignore", message=rf"`tf\..*` {DEPRECATION_NOTICE}", category=UserWarning)


quiet_deprecations(_QUIET)


def new_session(graph: "tf.Graph", **session_args) -> "tf.Session":
    """A ``tf.Session``, created quietly unless the user asked for C++ logs.

    Failures still raise, with their message, as Python exceptions.
    """
    with _stderr_silenced(_QUIET):
        return tf.Session(graph=graph, **session_args)


#: TensorFlow 2's namespace (tf.distribute strategies and their ReduceOp)
tf2 = _tf2
#: Every dataset class (tf.data v1 datasets derive from it), and the spec of a dense tensor.
DatasetBase = _tf2.data.Dataset
TensorSpec = _tf2.TensorSpec

__all__ = ["tf", "tf2", "DatasetBase", "TensorSpec", "new_session"]
