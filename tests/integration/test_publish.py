"""Integration tests of `streamscore publish` and `producer.publisher.publish` on a real broker."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner, Result
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from producer.publisher import publish
from producer.reader import read_rows
from streamscore.broker import free_port
from streamscore.kafka import reader_config
from streamscore.settings import Settings

SMS_ROWS = 'ham\tOk lar...\nspam\tFree "entry" in 2 a wkly comp\nham\tsee you at 5\n'

# How long a test waits for messages to arrive before it fails, in seconds.
READ_DEADLINE_S = 15.0


def run_cli(settings: Settings, tmp_path: Path, *args: str) -> Result:
    """Run `streamscore --config FILE ARGS`, with FILE holding these settings."""
    from streamscore.cli import cli

    config_file = tmp_path / "settings.yaml"
    config_file.write_text(yaml.safe_dump(settings.model_dump(mode="json")), encoding="utf-8")
    return CliRunner().invoke(cli, ["--config", str(config_file), *args])


def read_events(settings: Settings, topic: str, expected: int) -> list[tuple[str, Any]]:
    """Read (key, decoded value) pairs from every partition until `expected` or the deadline."""
    consumer = Consumer(reader_config(settings.kafka))
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    messages: list[Message] = []
    deadline = time.monotonic() + READ_DEADLINE_S
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            batch = consumer.consume(100, 0.2)
            messages.extend(message for message in batch if message.error() is None)
        # Wait a moment longer, so that a test also reads messages beyond the expected count.
        messages.extend(m for m in consumer.consume(100, 0.5) if m.error() is None)
    finally:
        consumer.close()
    return [(m.key().decode(), orjson.loads(m.value())) for m in messages]  # type: ignore[union-attr,arg-type]


@pytest.fixture
def sms_file(tmp_path: Path) -> Path:
    """Return a headerless TSV file of three SMS rows, one with quote characters."""
    path = tmp_path / "sms.tsv"
    path.write_text(SMS_ROWS, encoding="utf-8")
    return path


def unreachable_settings(tmp_path: Path) -> Settings:
    """Return settings that point at a loopback port with nothing listening."""
    return Settings(
        state_dir=tmp_path / "state",
        kafka={
            "bootstrap_servers": f"127.0.0.1:{free_port()}",
            "producer": {"message.timeout.ms": 2000},
        },
        topics={"input": "events-unreachable"},
    )


def test_publish_tsv_sends_event_per_row(
    settings_factory: Callable[..., Settings], tmp_path: Path, sms_file: Path
) -> None:
    settings = settings_factory()

    result = run_cli(settings, tmp_path, "publish", str(sms_file), "--columns", "label,message")
    messages = read_events(settings, settings.topics.input, 3)
    events = [event for _, event in messages]

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"published 3 events to {settings.topics.input} in ")
    assert result.stdout.rstrip().endswith(", 0 failed")
    assert len(messages) == 3
    assert [key for key, _ in messages] == [event["event_id"] for event in events]
    assert sorted(event["message"] for event in events) == sorted(
        line.split("\t")[1] for line in SMS_ROWS.splitlines()
    )
    assert all(set(event) == {"event_id", "event_time", "label", "message"} for event in events)
    assert all(datetime.fromisoformat(event["event_time"]).tzinfo for event in events)


def test_publish_fields_selects_event_fields(
    settings_factory: Callable[..., Settings], tmp_path: Path, sms_file: Path
) -> None:
    settings = settings_factory()
    options = ["--columns", "label,message", "--fields", "message"]

    result = run_cli(settings, tmp_path, "publish", str(sms_file), *options)
    events = [event for _, event in read_events(settings, settings.topics.input, 3)]

    assert result.exit_code == 0, result.output
    assert [set(event) for event in events] == [{"event_id", "event_time", "message"}] * 3


def test_publish_id_field_sets_key_and_event_id(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory()
    path = tmp_path / "events.jsonl"
    path.write_text('{"id": "a-1", "text": "x"}\n{"id": "a-2", "text": "y"}\n', encoding="utf-8")

    result = run_cli(settings, tmp_path, "publish", str(path), "--id-field", "id")
    messages = read_events(settings, settings.topics.input, 2)

    assert result.exit_code == 0, result.output
    assert sorted(key for key, _ in messages) == ["a-1", "a-2"]
    assert sorted(event["event_id"] for _, event in messages) == ["a-1", "a-2"]


def test_publish_limit_caps_rows(
    settings_factory: Callable[..., Settings], tmp_path: Path, sms_file: Path
) -> None:
    settings = settings_factory()

    result = run_cli(
        settings, tmp_path, "publish", str(sms_file), "--columns", "label,message", "--limit", "2"
    )

    assert result.exit_code == 0, result.output
    assert len(read_events(settings, settings.topics.input, 2)) == 2


def test_publish_rate_paces_events(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory()
    rows = [{"message": f"row {index}"} for index in range(20)]

    report = publish(settings, rows, rate=40)

    # 20 events at 40 events/s: the last one is due 19/40 s = 0.475 s after the first.
    assert report.elapsed_s >= 0.4
    assert report.delivered == 20


def test_publish_on_published_receives_ids_and_rows(
    settings_factory: Callable[..., Settings], sms_file: Path
) -> None:
    settings = settings_factory()
    published: list[tuple[str, dict[str, Any]]] = []

    report = publish(
        settings,
        read_rows(sms_file, columns=["label", "message"]),
        on_published=lambda event_id, row: published.append((event_id, dict(row))),
    )
    keys = {key for key, _ in read_events(settings, settings.topics.input, 3)}

    assert report.delivered == 3
    assert {event_id for event_id, _ in published} == keys
    assert sorted(row["label"] for _, row in published) == ["ham", "ham", "spam"]


def test_publish_topic_option_overrides_input(
    settings_factory: Callable[..., Settings], tmp_path: Path, sms_file: Path
) -> None:
    settings = settings_factory()
    options = ["--columns", "label,message", "--topic", settings.topics.output]

    result = run_cli(settings, tmp_path, "publish", str(sms_file), *options)

    assert result.exit_code == 0, result.output
    assert len(read_events(settings, settings.topics.output, 3)) == 3


def test_publish_missing_file_exits_1_naming_path(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory()
    path = tmp_path / "absent.tsv"

    result = run_cli(settings, tmp_path, "publish", str(path), "--columns", "label,message")

    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert str(path) in result.stderr


def test_publish_bad_row_exits_1_naming_line(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory()
    path = tmp_path / "bad.tsv"
    path.write_text("ham\tfine\nspam\ttoo\tmany\n", encoding="utf-8")

    result = run_cli(settings, tmp_path, "publish", str(path), "--columns", "label,message")

    assert result.exit_code == 1
    assert f"error: {path}: line 2: expected 2 fields, got 3" in result.stderr


def test_publish_rate_zero_is_usage_error(
    settings_factory: Callable[..., Settings], tmp_path: Path, sms_file: Path
) -> None:
    settings = settings_factory()

    result = run_cli(settings, tmp_path, "publish", str(sms_file), "--rate", "0")

    assert result.exit_code == 2


def test_publish_unreachable_broker_counts_failures(tmp_path: Path) -> None:
    settings = unreachable_settings(tmp_path)

    report = publish(settings, [{"message": "a"}, {"message": "b"}])

    assert report.failed == 2
    assert report.delivered == 0


def test_publish_unreachable_broker_exits_1_fast(tmp_path: Path, sms_file: Path) -> None:
    settings = unreachable_settings(tmp_path)
    started = time.monotonic()

    result = run_cli(settings, tmp_path, "publish", str(sms_file), "--columns", "label,message")

    assert result.exit_code == 1
    assert time.monotonic() - started < 15
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: no broker responded at {settings.kafka.bootstrap_servers} within 5 s; start one "
        "with 'streamscore broker start' or set kafka.bootstrap_servers"
    ]


def test_publish_progress_lines_without_terminal(
    settings_factory: Callable[..., Settings], tmp_path: Path, sms_file: Path
) -> None:
    settings = settings_factory()

    result = run_cli(settings, tmp_path, "publish", str(sms_file), "--columns", "label,message")

    assert result.exit_code == 0, result.output
    assert "publish: 3/3 events in " in result.stderr


def test_publish_quiet_prints_no_progress(
    settings_factory: Callable[..., Settings], tmp_path: Path, sms_file: Path
) -> None:
    settings = settings_factory()
    config_file = tmp_path / "settings.yaml"
    config_file.write_text(yaml.safe_dump(settings.model_dump(mode="json")), encoding="utf-8")
    from streamscore.cli import cli

    result = CliRunner().invoke(
        cli,
        ["--quiet", "--config", str(config_file), "publish", str(sms_file)]
        + ["--columns", "label,message"],
    )

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.startswith("published 3 events")


def test_publish_without_file_or_generate_exits_2(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    result = run_cli(settings_factory(), tmp_path, "publish")

    assert result.exit_code == 2
    assert "missing FILE: give a file to publish, or --generate N" in result.stderr


def test_publish_unknown_field_exits_1_naming_columns(
    settings_factory: Callable[..., Settings], tmp_path: Path, sms_file: Path
) -> None:
    settings = settings_factory()

    result = run_cli(
        settings,
        tmp_path,
        "publish",
        str(sms_file),
        "--columns",
        "label,message",
        "--fields",
        "txt",
    )

    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {sms_file}: unknown field 'txt', expected one of the columns in the given "
        "columns: label, message"
    ]


def test_producer_module_runs_publish_command() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "producer", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )

    assert completed.returncode == 0, completed.stderr
    assert "Publish each row of FILE" in completed.stdout
