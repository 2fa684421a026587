"""The package version, importable without importing TensorFlow, MLflow or the core; pyproject.toml reads
it from here (the one place it is written; CHANGELOG.md says what each version changed)."""

__version__ = "0.2.0"
