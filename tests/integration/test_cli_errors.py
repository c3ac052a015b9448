"""User mistakes through the CLI: one `error:` line that names the fix, and the exit code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from streamscore.broker import free_port
from streamscore.settings import Settings


def run_cli(settings: Settings, tmp_path: Path, *args: str) -> Result:
    """Run `streamscore --config FILE ARGS`, with FILE holding these settings."""
    from streamscore.cli import cli

    config_file = tmp_path / "settings.yaml"
    config_file.write_text(yaml.safe_dump(settings.model_dump(mode="json")), encoding="utf-8")
    return CliRunner().invoke(cli, ["--config", str(config_file), *args])


def error_lines(result: Result) -> list[str]:
    """Return the lines of stderr that are not log records."""
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


@pytest.mark.parametrize("command", [["results"], ["dead-letters"], ["status"]], ids=" ".join)
def test_unreachable_broker_one_line_exit_1(tmp_path: Path, command: list[str]) -> None:
    settings = Settings(state_dir=tmp_path, kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"})

    result = run_cli(settings, tmp_path, *command)

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: no broker responded at {settings.kafka.bootstrap_servers} within 5 s; start one "
        "with 'streamscore broker start' or set kafka.bootstrap_servers"
    ]


@pytest.mark.parametrize(
    "command",
    [["worker", "--model-uri"], ["publish", "--generate", "3", "--model-uri"]],
    ids=lambda command: command[0],
)
def test_unknown_model_alias_one_line_exit_1(
    settings_factory: Callable[..., Settings],
    registered_model: str,
    tmp_path: Path,
    command: list[str],
) -> None:
    uri = registered_model.replace("@champion", "@no-such-alias")

    result = run_cli(settings_factory(), tmp_path, *command, uri)

    assert result.exit_code == 1
    assert len(error_lines(result)) == 1
    assert error_lines(result)[0].startswith(f"error: cannot load model {uri}: ")
    assert "streamscore train" in error_lines(result)[0]


def test_missing_file_one_line_exit_1(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    result = run_cli(settings_factory(), tmp_path, "publish", "absent.tsv")

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: input file 'absent.tsv' not found; check the path, which is relative to the "
        "directory the command runs in"
    ]


def test_bad_config_value_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamscore.cli import cli

    monkeypatch.setenv("STREAMSCORE_TOPICS__PARTITIONS", "0")

    result = CliRunner().invoke(cli, ["results"])

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: invalid config: topics.partitions: Input should be greater than or equal to 1 "
        "(got '0') (from environment variable STREAMSCORE_TOPICS__PARTITIONS)"
    ]


def test_debug_raises_the_exception(tmp_path: Path) -> None:
    from streamscore.cli import cli

    settings = Settings(state_dir=tmp_path, kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    config_file = tmp_path / "settings.yaml"
    config_file.write_text(yaml.safe_dump(settings.model_dump(mode="json")), encoding="utf-8")

    result = CliRunner().invoke(cli, ["--debug", "--config", str(config_file), "results"])

    assert result.exit_code != 0
    assert type(result.exception).__name__ == "BrokerError"


@pytest.mark.parametrize(
    "command", [["worker"], ["results"], ["publish", "--generate", "3"]], ids=lambda c: c[0]
)
def test_unknown_kafka_client_property_one_line_exit_2(tmp_path: Path, command: list[str]) -> None:
    settings = Settings(
        state_dir=tmp_path,
        kafka={"consumer": {"no.such.prop": 1}, "producer": {"no.such.prop": 1}},
        metrics={"port": 0},
        # No store there: the property must fail first, before any model is looked up.
        model={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
    )

    result = run_cli(settings, tmp_path, *command)

    assert result.exit_code == 2
    assert len(error_lines(result)) == 1
    assert '"no.such.prop"' in error_lines(result)[0]
