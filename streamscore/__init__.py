"""streamscore: score Kafka events with a scikit-learn model from the MLflow registry."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("streamscore")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
