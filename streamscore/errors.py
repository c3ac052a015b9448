"""Exceptions shared by every streamscore package; each carries the facts its message names."""

from __future__ import annotations


class StreamscoreError(Exception):
    """Root of every error streamscore raises on purpose."""


class ConfigError(StreamscoreError):
    """Invalid settings: the commands exit with code 2 and print the message."""


class BrokerError(StreamscoreError):
    """The embedded broker could not be started, reached or stopped."""


class ModelLoadError(StreamscoreError):
    """A registered model could not be resolved, loaded or used."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"cannot load model {uri}: {reason}")
        self.uri = uri
        self.reason = reason


class InputFileError(StreamscoreError):
    """An input file cannot be read as events."""
