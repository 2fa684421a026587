"""TensorFlow's environment defaults, set when the package is imported and before TensorFlow loads.

Only what the user has not set:

- ``TF_USE_LEGACY_KERAS=1``: ``tf.layers.*`` needs Keras 2 (the ``tf-keras`` package);
  with Keras 3 it fails with ``conv2d is not available with Keras 3``.
- ``TF_CPP_MIN_LOG_LEVEL=2``: hides TensorFlow's C++ INFO and WARNING logs (``QUIET``:
  the package chose it, so ``_tf.py`` also silences what TensorFlow prints before it
  reads the setting).

Importing the package does not import TensorFlow (``elistimator --help`` never needs it);
``_tf.py`` does, when the Elistimator or a spec is first used.
"""

import os

QUIET = "TF_CPP_MIN_LOG_LEVEL" not in os.environ
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
