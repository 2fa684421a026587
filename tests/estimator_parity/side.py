"""Which tf.estimator a parity program runs on: the real one (TF 2.15.1 + tensorflow-estimator 2.15.0,
in a venv of its own) or ours (``elistimator_tracking.estimator`` on TF 2.21).

``ESTIMATOR_SIDE=real`` or ``ours`` (the default) picks it; a program's only difference between the
two sides is the line ``tf, tf_estimator = side.load()``, which stands for the import line a user
changes (``tf_estimator = tf.estimator`` against ``from elistimator_tracking import estimator``).
Both sides run TF1-style graph code: eager execution off, as in TensorFlow 1.15. ``ESTIMATOR_TRACKING=0``
makes our Estimators untracked (``tracking=False``), for the benchmark's comparison of the two.
"""

from __future__ import annotations

import os

REAL_PYTHON = os.environ.get("ELISTIMATOR_TF215_PYTHON", "/work/venvs/tf215/bin/python")


def environment(side: str, **extra: str) -> dict[str, str]:
    """The environment of a subprocess running ``side``: this process's, without what the package set for
    TF 2.21 (``TF_USE_LEGACY_KERAS=1`` makes TF 2.15 look for tf-keras, which its venv does not have)."""
    env = {**os.environ, "ESTIMATOR_SIDE": side, **extra}
    if side == "real":
        env.pop("TF_USE_LEGACY_KERAS", None)
    return env


def name() -> str:
    side = os.environ.get("ESTIMATOR_SIDE", "ours")
    if side not in ("real", "ours"):
        raise SystemExit(f"ESTIMATOR_SIDE must be 'real' or 'ours', got {side!r}")
    return side


def load():
    """``(tf, tf_estimator)``: ``tensorflow.compat.v1`` and the estimator API of this side."""
    if name() == "real":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow.compat.v1 as tf

        tf.disable_eager_execution()
        tf.logging.set_verbosity(tf.logging.ERROR)
        return tf, tf.estimator
    from elistimator_tracking import estimator
    from elistimator_tracking._tf import tf

    if os.environ.get("ESTIMATOR_TRACKING") == "0":  # the benchmark's untracked variant: tracking=False
        tracked = estimator.Estimator.__init__

        def untracked(self, *args, **kwargs):
            kwargs.setdefault("tracking", False)
            tracked(self, *args, **kwargs)

        estimator.Estimator.__init__ = untracked
    return tf, estimator
