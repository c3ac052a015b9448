"""Logging configuration for entry points: text for terminals, JSON lines for containers."""

from __future__ import annotations

import logging
import logging.config
from datetime import UTC, datetime

import orjson

from streamscore.settings import LoggingSettings


class JsonFormatter(logging.Formatter):
    """Format each record as one JSON object with time, level, logger and message."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON line."""
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure_logging(settings: LoggingSettings) -> None:
    """Send every streamscore logger's records to stderr in the configured format."""
    formatter = (
        {"()": JsonFormatter}
        if settings.format == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    )
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"default": formatter},
            "handlers": {
                "stderr": {"class": "logging.StreamHandler", "formatter": "default"},
            },
            "loggers": {
                name: {"level": settings.level}
                for name in ("streamscore", "stream", "producer", "trainer")
            },
            "root": {"level": "WARNING", "handlers": ["stderr"]},
        }
    )
