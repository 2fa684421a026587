"""The package version, importable without importing TensorFlow, MLflow or the core."""

__version__ = "0.1.0"
