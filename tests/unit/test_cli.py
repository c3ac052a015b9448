"""The command line: help, version and the exit codes of configuration errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from streamscore import __version__
from streamscore.cli import cli, run_subcommand

COMMANDS = [
    ["broker"],
    ["broker", "start"],
    ["broker", "stop"],
    ["broker", "status"],
    ["train"],
    ["worker"],
    ["publish"],
    ["status"],
    ["results"],
    ["dead-letters"],
    ["demo"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_cli_help_of_every_command(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])

    assert result.exit_code == 0
    assert "Usage:" in result.output
    assert "Example" in result.output


def test_cli_bash_completion_prints_script() -> None:
    result = CliRunner().invoke(
        cli, [], env={"_STREAMSCORE_COMPLETE": "bash_source"}, prog_name="streamscore"
    )

    assert result.exit_code == 0
    assert "_streamscore_completion()" in result.output
    assert "complete -o nosort -F _streamscore_completion streamscore" in result.output


def test_cli_quiet_is_moved_before_the_subcommand(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr("streamscore.cli.main", calls.append)

    run_subcommand("publish", ["--quiet", "data.tsv"])

    assert calls == [["--quiet", "publish", "data.tsv"]]


def test_cli_version_printed() -> None:
    result = CliRunner().invoke(cli, ["--version"])

    assert result.exit_code == 0
    assert __version__ in result.output


def test_cli_malformed_config_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("worker: [unclosed\n", encoding="utf-8")

    result = CliRunner().invoke(cli, ["--config", str(config), "broker", "status"])

    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert result.output.startswith("error: invalid config: ")
    assert "malformed YAML at line" in result.output


def test_cli_unknown_key_exits_2_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("topics:\n  inptu: events\n", encoding="utf-8")

    result = CliRunner().invoke(cli, ["--config", str(config), "broker", "status"])

    assert result.exit_code == 2
    assert "topics.inptu: unknown setting" in result.output


def test_cli_bad_environment_value_exits_2_naming_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMSCORE_WORKER__BATCH_SIZE", "abc")

    result = CliRunner().invoke(cli, ["broker", "status"])

    assert result.exit_code == 2
    assert "worker.batch_size" in result.output
    assert "STREAMSCORE_WORKER__BATCH_SIZE" in result.output
    assert "Traceback" not in result.output


def test_cli_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "none.yaml"), "broker", "status"])

    assert result.exit_code == 2
    assert "none.yaml" in result.output


def test_cli_debug_shows_the_exception(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("worker: [unclosed\n", encoding="utf-8")

    result = CliRunner().invoke(cli, ["--debug", "--config", str(config), "broker", "status"])

    assert result.exit_code != 0
    assert result.exception is not None
    assert "malformed YAML" in str(result.exception)


def test_run_subcommand_moves_group_options_first(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr("streamscore.cli.main", calls.append)

    run_subcommand("worker", ["--batch-size", "5", "--config", "x.yaml", "--debug"])

    assert calls == [["--config", "x.yaml", "--debug", "worker", "--batch-size", "5"]]
