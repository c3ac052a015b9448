"""What every run shares: the broker, the trained model, the events and per-run settings."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streamscore.events import encode_event, format_time
from streamscore.kafka import producer_config
from streamscore.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "sms_spam_collection.tsv"

# Tansu completes a group join after about half the session timeout; 3 s keeps the join short
# while leaving a loaded 2-core machine room for heartbeats.
SESSION_TIMEOUT_MS = 3_000
HEARTBEAT_INTERVAL_MS = 1_000
PARTITIONS = 4
MODEL_NAME = "sms-spam-bench"
MODEL_URI = f"models:/{MODEL_NAME}@champion"
# The registered model, saved with joblib into the state directory for the runs that score
# without the worker: Quix Streams' venv has no MLflow, and the others start faster without it.
MODEL_FILE_NAME = "model.joblib"


@dataclass(frozen=True)
class BenchContext:
    """The broker, the MLflow store, the state directory, the input topics and the model."""

    bootstrap: str
    tracking_uri: str
    state_dir: Path
    input_topic: str
    small_topic: str = ""
    model_uri: str = MODEL_URI
    # Where each run's process writes its log; the state directory when None.
    log_dir: Path | None = None

    def settings(self, name: str, **sections: dict[str, Any]) -> Settings:
        """Build worker settings for one run: its own group and output topic, the shared input.

        Each run reads the shared input from the beginning in a new consumer group, so the
        events are published once for all throughput runs.
        """
        suffix = f"{name}-{uuid.uuid4().hex[:8]}"
        values: dict[str, Any] = {
            "kafka": {
                "bootstrap_servers": self.bootstrap,
                "session_timeout_ms": SESSION_TIMEOUT_MS,
                "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
            },
            "topics": {
                "input": self.input_topic,
                "output": f"results-{suffix}",
                "dead_letter": f"dead-letter-{suffix}",
                "partitions": PARTITIONS,
            },
            "worker": {"group_id": f"group-{suffix}"},
            "model": {"uri": self.model_uri, "tracking_uri": self.tracking_uri},
            "metrics": {"port": 0},
            "logging": {"level": "INFO"},
        }
        for section, overrides in sections.items():
            values.setdefault(section, {}).update(overrides)
        return Settings(state_dir=self.state_dir, **values)


def write_config(settings: Settings, path: Path) -> Path:
    """Write settings as the YAML file that `python -m stream --config FILE` reads."""
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json")), encoding="utf-8")
    return path


def create_topics(bootstrap: str, names: list[str], partitions: int = PARTITIONS) -> None:
    """Create topics and wait until the broker confirms each one."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    for future in futures.values():
        future.result(timeout=30)


def train_model(context: BenchContext, is_quick: bool) -> None:
    """Train the reference pipeline into the bench's private MLflow store.

    The quick mode (for `make test`) fits 5 trees on 1,000 rows: the same code path, in seconds.
    """
    from trainer.train import train

    training: dict[str, Any] = {
        "data_path": DATA,
        "registered_model": MODEL_NAME,
        "experiment": MODEL_NAME,
        "min_metrics": {"f1": 0.0},
    }
    if is_quick:
        data_path = context.state_dir / "sms-quick.tsv"
        lines = DATA.read_text(encoding="utf-8").splitlines(keepends=True)[:1_000]
        data_path.write_text("".join(lines), encoding="utf-8")
        training.update(data_path=data_path, n_estimators=5)
    settings = Settings(
        state_dir=context.state_dir,
        model={"tracking_uri": context.tracking_uri},
        training=training,
        logging={"level": "WARNING"},
    )
    train(settings)


def sms_messages() -> list[str]:
    """Return the SMS texts of the data set, in file order."""
    lines = DATA.read_text(encoding="utf-8").splitlines()
    return [line.split("\t", 1)[1] for line in lines if "\t" in line]


def repeated_messages(count: int) -> Iterator[tuple[str, str]]:
    """Yield (event_id, message) for `count` events: the SMS texts repeated in order."""
    messages = sms_messages()
    for index in range(count):
        yield f"bench-{index}", messages[index % len(messages)]


def publish_backlog(bootstrap: str, topic: str, count: int) -> float:
    """Publish `count` events as fast as the broker takes them; return the seconds it took.

    Every event gets the same `event_time`, the start of publishing, so the latency of a backlog
    run includes the time its events waited in the backlog.
    """
    settings = Settings(kafka={"bootstrap_servers": bootstrap})
    producer = Producer(
        producer_config(settings.kafka, **{"linger.ms": 20, "batch.size": 1_000_000})
    )
    event_time = format_time()
    started = time.monotonic()
    for event_id, message in repeated_messages(count):
        value = encode_event(event_id, {"message": message}, event_time)
        while True:
            try:
                producer.produce(topic, value, event_id.encode())
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining:
        raise RuntimeError(f"{remaining} of {count} backlog events were not delivered")
    return time.monotonic() - started
