"""`streamscore broker start|status|stop` on a free loopback port."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from streamscore.broker import free_port, is_answering
from streamscore.cli import cli


@pytest.fixture
def broker_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("STREAMSCORE_KAFKA__BOOTSTRAP_SERVERS", address)
    monkeypatch.setenv("STREAMSCORE_STATE_DIR", str(tmp_path / "state"))
    return address


def test_broker_start_status_stop(broker_env: str) -> None:
    runner = CliRunner()

    started = runner.invoke(cli, ["broker", "start"])
    try:
        running = runner.invoke(cli, ["broker", "status"])
        again = runner.invoke(cli, ["broker", "start"])
    finally:
        stopped = runner.invoke(cli, ["broker", "stop"])
    after = runner.invoke(cli, ["broker", "status"])

    assert started.exit_code == 0, started.output
    assert f"broker started on {broker_env}" in started.output
    assert "events, predictions, events.dead-letter with 4 partitions" in started.output
    assert running.exit_code == 0
    assert "broker running" in running.output
    assert again.exit_code == 1
    assert "already running" in again.output
    assert stopped.exit_code == 0
    assert "stopped" in stopped.output
    assert after.exit_code == 1
    assert "not running" in after.output
    assert not is_answering(broker_env, timeout_s=1)


def test_broker_start_rejects_remote_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMSCORE_KAFKA__BOOTSTRAP_SERVERS", "kafka.example:9092")

    result = CliRunner().invoke(cli, ["broker", "start"])

    assert result.exit_code == 1
    assert "loopback only" in result.output


def test_broker_stop_without_broker_says_so(broker_env: str) -> None:
    result = CliRunner().invoke(cli, ["broker", "stop"])

    assert result.exit_code == 0
    assert "no broker started here was running" in result.output


def test_broker_stop_ignores_stale_pid_of_other_process(broker_env: str, tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    state = tmp_path / "state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "broker.pid").write_text(f"{sleeper.pid}\n")
    try:
        result = CliRunner().invoke(cli, ["broker", "stop"])
        is_alive = sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()

    assert result.exit_code == 0
    assert "no broker started here was running" in result.output
    assert is_alive
