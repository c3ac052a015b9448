"""Logging configuration for entry points: text for terminals, JSON lines for containers."""

from __future__ import annotations

import logging
import logging.config
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from streamscore.settings import LoggingSettings

# Loggers of streamscore's own packages; `logging.level` applies to each of them.
PACKAGE_LOGGERS = ("streamscore", "stream", "producer", "trainer")

# A `key=%s` pair in a format string: lifecycle messages put their facts in this form.
_FIELD = re.compile(r"(?<![\w.])([a-z_][a-z0-9_]*)=%[-#0 +]*\d*(?:\.\d+)?[sdifgrx]")
# Keys of every JSON line; a message field with the same name is left in the message only.
_RESERVED = frozenset({"time", "level", "logger", "message", "exception"})


class JsonFormatter(logging.Formatter):
    """Format each record as one JSON object with time, level, logger and message.

    The `key=%s` arguments of a message are also emitted as fields of their own, so that
    `"model loaded name=%s version=%s"` gives `"name": ..., "version": ...` besides the message.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON line."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in _fields(record).items():
            entry.setdefault(name, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """Pair the `key=%s` names of the format string with the record's arguments."""
    args = record.args
    if not isinstance(record.msg, str) or not isinstance(args, tuple) or not args:
        return {}
    names = _field_names(record.msg)
    # A format string with other placeholders than key=%s ones cannot be paired safely.
    if len(names) != len(args):
        return {}
    return {
        name: value if isinstance(value, int | float | bool | str) or value is None else str(value)
        for name, value in zip(names, args, strict=True)
        if name not in _RESERVED
    }


@lru_cache(maxsize=1024)
def _field_names(message_format: str) -> tuple[str, ...]:
    if message_format.count("%") != len(_FIELD.findall(message_format)):
        return ()
    return tuple(_FIELD.findall(message_format))


def configure_logging(settings: LoggingSettings) -> None:
    """Send every streamscore logger's records to stderr in the configured format.

    `logging.level` sets the level of streamscore's packages. `logging.loggers` then sets the
    level of single loggers, streamscore's or a library's, e.g. `stream.worker: DEBUG`.
    """
    formatter = (
        {"()": JsonFormatter}
        if settings.format == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    )
    loggers: dict[str, dict[str, Any]] = {
        name: {"level": settings.level} for name in PACKAGE_LOGGERS
    }
    for name, level in settings.loggers.items():
        loggers[name] = {"level": level}
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"default": formatter},
            "handlers": {
                "stderr": {"class": "logging.StreamHandler", "formatter": "default"},
            },
            "loggers": loggers,
            "root": {"level": "WARNING", "handlers": ["stderr"]},
        }
    )
