"""Logging configuration: per-logger levels from settings and the JSON formatter's fields."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from streamscore.errors import ConfigError
from streamscore.logs import JsonFormatter, configure_logging
from streamscore.settings import LoggingSettings, load_settings


@pytest.fixture
def _restore_levels() -> Iterator[None]:
    names = ["stream", "stream.worker", "streamscore.librdkafka"]
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("stream.worker", logging.INFO, __file__, 1, message, args, None)


@pytest.mark.usefixtures("_restore_levels")
def test_configure_logging_sets_single_logger_levels() -> None:
    settings = LoggingSettings(
        level="WARNING", loggers={"stream.worker": "debug", "streamscore.librdkafka": "ERROR"}
    )

    configure_logging(settings)

    assert logging.getLogger("stream").level == logging.WARNING
    assert logging.getLogger("stream.worker").level == logging.DEBUG
    assert logging.getLogger("streamscore.librdkafka").level == logging.ERROR


def test_logging_settings_reject_unknown_level(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("logging:\n  loggers: {stream.worker: LOUD}\n", encoding="utf-8")

    with pytest.raises(ConfigError, match="logging.loggers.stream.worker: .*'LOUD'"):
        load_settings(path)


def test_json_formatter_emits_key_value_fields() -> None:
    record = _record("model loaded name=%s version=%s partitions=%d", "spam", "3", 4)

    entry = orjson.loads(JsonFormatter().format(record))

    assert entry["message"] == "model loaded name=spam version=3 partitions=4"
    assert entry["name"] == "spam"
    assert entry["version"] == "3"
    assert entry["partitions"] == 4


def test_json_formatter_keeps_reserved_keys() -> None:
    record = _record("odd message level=%s", "custom")

    entry = orjson.loads(JsonFormatter().format(record))

    assert entry["level"] == "INFO"
    assert entry["message"] == "odd message level=custom"


def test_json_formatter_skips_unpaired_placeholders() -> None:
    record = _record("%d events in %s", 3, "batch")

    entry = orjson.loads(JsonFormatter().format(record))

    assert set(entry) == {"time", "level", "logger", "message"}


def test_json_formatter_stringifies_other_values() -> None:
    record = _record("commit failed error=%s", ValueError("broker down"))

    entry = orjson.loads(JsonFormatter().format(record))

    assert entry["error"] == "broker down"
