"""Integration tests of `streamscore.results` and the `results` command on a real broker."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner, Result
from confluent_kafka import Producer

from streamscore.errors import StreamscoreError
from streamscore.kafka import producer_config
from streamscore.results import read_results
from streamscore.settings import Settings


def result(event_id: str, label: str, probability: float = 0.9) -> dict[str, Any]:
    """Build a result as the worker writes it."""
    return {
        "event_id": event_id,
        "label": label,
        "probability": probability,
        "model_name": "sms-spam",
        "model_version": "3",
        "event_time": "2025-01-01T00:00:00.000000+00:00",
        "scored_at": "2025-01-01T00:00:00.100000+00:00",
    }


RESULTS = [result("e-1", "ham"), result("e-2", "spam", 0.75), result("e-3", "ham", 0.5)]


def produce(settings: Settings, values: list[bytes]) -> None:
    """Write raw values to the output topic, keyed like results, and wait for delivery."""
    producer = Producer(producer_config(settings.kafka))
    for index, value in enumerate(values):
        producer.produce(settings.topics.output, value=value, key=f"key-{index}".encode())
    assert producer.flush(10) == 0


def run_cli(settings: Settings, tmp_path: Path, *args: str) -> Result:
    """Run `streamscore --config FILE ARGS`, with FILE holding these settings."""
    from streamscore.cli import cli

    config_file = tmp_path / "settings.yaml"
    config_file.write_text(yaml.safe_dump(settings.model_dump(mode="json")), encoding="utf-8")
    return CliRunner().invoke(cli, ["--config", str(config_file), *args])


@pytest.fixture
def settings_with_results(settings_factory: Callable[..., Settings]) -> Settings:
    """Return settings whose output topic contains the three RESULTS."""
    settings = settings_factory()
    produce(settings, [orjson.dumps(item) for item in RESULTS])
    return settings


def test_read_results_stops_at_end_offsets(settings_with_results: Settings) -> None:
    messages = list(read_results(settings_with_results))

    assert sorted(m.result["event_id"] for m in messages if m.result) == ["e-1", "e-2", "e-3"]


def test_read_results_limit_stops_early(settings_with_results: Settings) -> None:
    messages = list(read_results(settings_with_results, limit=2))

    assert len(messages) == 2


def test_read_results_follow_yields_new_results(settings_with_results: Settings) -> None:
    messages = read_results(settings_with_results, follow=True, limit=4)
    first_three = [next(messages) for _ in range(3)]

    produce(settings_with_results, [orjson.dumps(result("e-4", "spam"))])
    fourth = next(messages)

    assert len(first_three) == 3
    assert fourth.result is not None
    assert fourth.result["event_id"] == "e-4"


def test_read_results_from_end_without_follow_is_empty(settings_with_results: Settings) -> None:
    start = time.monotonic()

    messages = list(read_results(settings_with_results, from_beginning=False))

    assert messages == []
    assert time.monotonic() - start < 5


def test_read_results_empty_topic_returns_at_once(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory()
    start = time.monotonic()

    messages = list(read_results(settings))

    assert messages == []
    assert time.monotonic() - start < 5


def test_read_results_unknown_topic_raises(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory()

    with pytest.raises(StreamscoreError, match=r"topic 'no-such-topic-[0-9a-f]+' not found"):
        list(read_results(settings, topic=f"no-such-topic-{time.time_ns():x}", timeout_s=5))


def test_results_command_prints_lines_and_summary(
    settings_with_results: Settings, tmp_path: Path
) -> None:
    output = run_cli(settings_with_results, tmp_path, "results", "--table")
    lines = output.stdout.splitlines()
    summary = output.stderr.strip().splitlines()

    assert output.exit_code == 0, output.output
    assert lines[0].split() == ["event_id", "label", "probability", "model_version", "latency"]
    assert sorted(line.split() for line in lines[1:]) == [
        ["e-1", "ham", "0.9000", "3", "100", "ms"],
        ["e-2", "spam", "0.7500", "3", "100", "ms"],
        ["e-3", "ham", "0.5000", "3", "100", "ms"],
    ]
    assert summary[-2] == "3 results: ham 2, spam 1"
    assert summary[-1] == "latency p50 100 ms, p95 100 ms, p99 100 ms"


def test_results_command_piped_prints_json(settings_with_results: Settings, tmp_path: Path) -> None:
    output = run_cli(settings_with_results, tmp_path, "results")
    printed = [orjson.loads(line) for line in output.stdout.splitlines()]

    assert output.exit_code == 0, output.output
    assert sorted(printed, key=lambda item: item["event_id"]) == RESULTS


def test_results_command_json_prints_objects_unchanged(
    settings_with_results: Settings, tmp_path: Path
) -> None:
    output = run_cli(settings_with_results, tmp_path, "results", "--json")
    printed = [orjson.loads(line) for line in output.stdout.splitlines()]

    assert output.exit_code == 0, output.output
    assert sorted(printed, key=lambda item: item["event_id"]) == RESULTS


def test_results_command_limit_caps_lines(settings_with_results: Settings, tmp_path: Path) -> None:
    output = run_cli(settings_with_results, tmp_path, "results", "--json", "--limit", "2")

    assert output.exit_code == 0, output.output
    assert len(output.stdout.splitlines()) == 2


def test_results_command_invalid_message_counted(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory(topics={"partitions": 1})
    produce(settings, [orjson.dumps(result("e-1", "spam")), b"not json", b"[1, 2]"])

    output = run_cli(settings, tmp_path, "results")

    assert output.exit_code == 0, output.output
    assert "offset 1: not a result: invalid JSON" in output.stderr
    assert "offset 2: not a result: expected a JSON object, got list" in output.stderr
    assert output.stderr.strip().splitlines()[-2] == "1 result: spam 1; 2 invalid messages skipped"


def test_results_command_topic_option_reads_that_topic(
    settings_with_results: Settings, tmp_path: Path
) -> None:
    output = run_cli(
        settings_with_results, tmp_path, "results", "--topic", settings_with_results.topics.input
    )

    assert output.exit_code == 0, output.output
    assert output.stderr.strip().splitlines()[-1] == "0 results"


def test_results_follow_ctrl_c_prints_summary(
    settings_with_results: Settings, tmp_path: Path
) -> None:
    config_file = tmp_path / "settings.yaml"
    config_file.write_text(
        yaml.safe_dump(settings_with_results.model_dump(mode="json")), encoding="utf-8"
    )
    command = [sys.executable, "-c", "from streamscore.cli import main; main()"]
    process = subprocess.Popen(
        [*command, "--config", str(config_file), "results", "--follow", "--from-beginning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert process.stdout is not None
        # Three JSON lines, because stdout is a pipe: once printed, the command is following.
        printed = [process.stdout.readline() for _ in range(3)]
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    finally:
        process.kill()

    assert len(printed) == 3
    assert process.returncode == 0, stderr
    assert stderr.strip().splitlines()[-2] == "3 results: ham 2, spam 1"
