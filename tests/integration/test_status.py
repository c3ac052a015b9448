"""`streamscore status` against a running worker and its metrics endpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml
from click.testing import CliRunner, Result

from stream.scorer import Scorer
from streamscore.events import encode_event
from streamscore.settings import Settings
from tests.integration.helpers import produce, read_topic, running_worker


def run_cli(settings: Settings, tmp_path: Path, *args: str) -> Result:
    """Run `streamscore --config FILE ARGS`, with FILE holding these settings."""
    from streamscore.cli import cli

    config_file = tmp_path / "settings.yaml"
    config_file.write_text(yaml.safe_dump(settings.model_dump(mode="json")), encoding="utf-8")
    return CliRunner().invoke(cli, ["--config", str(config_file), *args])


def test_status_shows_lag_and_worker_model(
    settings_factory: Callable[..., Settings], registered_model: str, tmp_path: Path
) -> None:
    settings = settings_factory(model={"uri": registered_model})
    scorer = Scorer.from_registry(
        registered_model, settings.model.tracking_uri, settings.worker.max_event_bytes
    )
    events = [(f"e-{i}".encode(), encode_event(f"e-{i}", {"message": "hi"})) for i in range(6)]
    produce(settings, events)

    with running_worker(settings, scorer) as metrics:
        port = metrics.serve("127.0.0.1", 0)
        read_topic(settings, settings.topics.output, expected=6)
        url = f"http://127.0.0.1:{port}/metrics"
        result = run_cli(settings, tmp_path, "status", "--metrics-url", url, "--interval", "0.2")
    lines = result.stdout.splitlines()

    assert result.exit_code == 0, result.output
    assert lines[0].startswith(f"group {settings.worker.group_id} on ")
    assert lines[1] == f"input topic {settings.topics.input}"
    assert lines[2] == "members: unavailable"
    assert lines[3].split() == ["partition", "committed", "end", "lag"]
    assert [line.split()[0] for line in lines[4:6]] == ["0", "1"]
    assert lines[6].startswith("total lag ")
    assert "note: the broker reported no members of this stable group" in lines
    assert f"worker {url}: model sms-spam-test version " in result.stdout
    assert "partitions 2, consumed 6, " in result.stdout


def test_status_unreachable_metrics_is_reported(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    from streamscore.broker import free_port

    settings = settings_factory()
    url = f"http://127.0.0.1:{free_port()}/metrics"

    result = run_cli(settings, tmp_path, "status", "--metrics-url", url, "--interval", "0.1")

    assert result.exit_code == 0, result.output
    assert f"worker {url}: unavailable (" in result.stdout
