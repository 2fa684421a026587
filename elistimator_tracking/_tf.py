"""The one place that imports TensorFlow.

TF1 graph code runs on TensorFlow 2.21 through ``tensorflow.compat.v1`` with eager
execution disabled (``tensorflow-gpu==1.15`` has no wheels for current Pythons). The
environment defaults are ``_env.py``'s. When the package chose ``TF_CPP_MIN_LOG_LEVEL=2``,
what TensorFlow 2.21 prints before it reads that setting (absl logs "before
InitializeLog" go straight to stderr) is silenced too: the import runs with file
descriptor 2 pointed at /dev/null, and so does the creation of sessions (device probing
logs, e.g. ``failed call to cuInit`` on machines without a GPU).
"""

import contextlib
import os
import sys

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
