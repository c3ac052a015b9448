"""Fixtures for tests against a real Kafka-protocol broker and a real MLflow registry.

The broker is the embedded Tansu broker, started once per session on a free port, unless
`KAFKA_BOOTSTRAP_SERVERS` names a cluster to use instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streamscore.broker import EmbeddedBroker, free_port
from streamscore.kafka import ensure_topics
from streamscore.settings import Settings

# Tansu completes a group join after about half the session timeout, so a short timeout keeps
# each test's first poll fast.
SESSION_TIMEOUT_MS = 2_000
HEARTBEAT_INTERVAL_MS = 500

# Rows of the SMS data the test model is trained on: enough for a useful model, fast to fit.
TRAINING_ROWS = 1_500


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Return bootstrap servers of a running broker for the whole session."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    broker = EmbeddedBroker("127.0.0.1", free_port(), tmp_path_factory.mktemp("broker"))
    broker.start()
    yield broker.address
    broker.stop()


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Return an MLflow SQLite store private to this session."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def settings_factory(
    kafka_bootstrap: str, tracking_uri: str, tmp_path: Path
) -> Callable[..., Settings]:
    """Return a factory of settings with uuid-named topics and group on the session broker.

    Keyword arguments are sections to merge over the test defaults, e.g. `worker={"batch_size": 5}`.
    Topics are created before the settings are returned.
    """

    def make(**sections: dict[str, Any]) -> Settings:
        suffix = uuid.uuid4().hex[:12]
        values: dict[str, dict[str, Any]] = {
            "kafka": {
                "bootstrap_servers": kafka_bootstrap,
                "session_timeout_ms": SESSION_TIMEOUT_MS,
                "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
            },
            "topics": {
                "input": f"events-{suffix}",
                "output": f"predictions-{suffix}",
                "dead_letter": f"dead-letter-{suffix}",
                "partitions": 2,
            },
            "worker": {"group_id": f"group-{suffix}", "batch_wait_ms": 50},
            "model": {"tracking_uri": tracking_uri},
            "metrics": {"port": 0},
            "training": {"experiment": f"experiment-{suffix}"},
        }
        for section, overrides in sections.items():
            values.setdefault(section, {}).update(overrides)
        settings = Settings(state_dir=tmp_path / "state", **values)
        ensure_topics(settings)
        return settings

    return make


@pytest.fixture(scope="session")
def registered_model(tracking_uri: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Train the spam pipeline on the first rows of the SMS data and return its alias URI."""
    from trainer.train import train

    source = Path(__file__).resolve().parents[2] / "data" / "sms_spam_collection.tsv"
    data_path = tmp_path_factory.mktemp("data") / "sms.tsv"
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)[:TRAINING_ROWS]
    data_path.write_text("".join(lines), encoding="utf-8")
    settings = Settings(
        state_dir=tmp_path_factory.mktemp("train-state"),
        model={"tracking_uri": tracking_uri},
        training={
            "data_path": data_path,
            "registered_model": "sms-spam-test",
            "experiment": "sms-spam-test",
            "n_estimators": 10,
            "min_metrics": {"f1": 0.0},
        },
    )
    train(settings)
    return "models:/sms-spam-test@champion"


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the artifact folder of models that tests register directly."""
    return tmp_path_factory.mktemp("artifacts")
