"""A SASL password set in config never appears in the worker's logs, librdkafka's included."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import yaml

from streamscore.settings import Settings
from tests.integration.helpers import wait_for

PASSWORD = "Pa55-never-logged-7f3a"  # noqa: S105 - the value the test looks for
KEY_PASSWORD = "Key-pa55-never-logged-91c2"  # noqa: S105


def test_worker_logs_never_contain_sasl_password(
    settings_factory, registered_model: str, tmp_path: Path
) -> None:
    settings: Settings = settings_factory(model={"uri": registered_model})
    document = settings.model_dump(mode="json")
    document["kafka"]["security"] = {
        "protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_username": "scorer",
        "sasl_password": PASSWORD,
    }
    # Every librdkafka debug context, so that its configuration and SASL lines are logged too.
    document["kafka"]["client"] = {"debug": "all"}
    document["logging"] = {"level": "DEBUG", "format": "json", "loggers": {}}
    config = tmp_path / "worker.yaml"
    config.write_text(yaml.safe_dump(document), encoding="utf-8")
    log_path = tmp_path / "worker.log"

    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "stream", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            # The broker accepts no SASL, so the worker never gets partitions: wait until
            # librdkafka has tried to authenticate, then stop it.
            wait_for(lambda: b"worker started" in log_path.read_bytes(), timeout_s=90)
            wait_for(lambda: b"SASL" in log_path.read_bytes(), timeout_s=30)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)

    text = log_path.read_text(encoding="utf-8", errors="replace")
    assert "streamscore.librdkafka" in text
    assert "PLAIN" in text
    assert PASSWORD not in text


def test_config_error_hides_password_values(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {
                    "security": {
                        "protocol": "SSL",
                        "ssl_key_password": [KEY_PASSWORD],
                    }
                }
            }
        ),
        encoding="utf-8",
    )

    completed = subprocess.run(  # noqa: S603 - the test's own interpreter and module
        [sys.executable, "-m", "stream", "--config", str(config)],
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 2
    assert b"kafka.security.ssl_key_password" in completed.stderr
    assert KEY_PASSWORD.encode() not in completed.stderr + completed.stdout
