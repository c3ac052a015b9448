"""Shared parts of the scenarios: worker processes, a paced event stream and the final tally."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from streamscore.broker import free_port
from streamscore.events import encode_event
from streamscore.kafka import ensure_topics, producer_config, reader_config
from streamscore.settings import Settings

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "sms_spam_collection.tsv"

# Tansu completes a group join after about half the session timeout; 3 s keeps joins short
# while leaving a loaded 2-core machine room for heartbeats.
SESSION_TIMEOUT_MS = 3_000
HEARTBEAT_INTERVAL_MS = 1_000
PARTITIONS = 4
MODEL_NAME = "sms-spam-chaos"
MODEL_URI = f"models:/{MODEL_NAME}@champion"
# Rows the chaos model is trained on, and its trees: the real pipeline, fitted in seconds.
TRAINING_ROWS = 1_000
TRAINING_TREES = 10


@dataclass(frozen=True)
class Outcome:
    """One scenario's line of the report.

    `lost` counts input events with neither a result nor a dead-letter record. `duplicates`
    counts records beyond the first per event, as a read_committed reader receives them.
    """

    name: str
    guarantee: str
    sent: int
    results_unique: int
    dead_lettered: int
    lost: int
    duplicates: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the report's JSON object for this scenario."""
        return {
            "name": self.name,
            "guarantee": self.guarantee,
            "sent": self.sent,
            "results_unique": self.results_unique,
            "dead_lettered": self.dead_lettered,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "seconds": round(self.seconds, 1),
            "notes": self.notes,
        }


@dataclass(frozen=True)
class ChaosContext:
    """The broker, the MLflow store with the trained model, and a folder for logs."""

    bootstrap: str
    tracking_uri: str
    run_dir: Path
    model_uri: str = MODEL_URI

    def settings(self, name: str, guarantee: str, **sections: dict[str, Any]) -> Settings:
        """Build settings with topics and a group of their own; create the topics."""
        suffix = f"{name}-{uuid.uuid4().hex[:8]}"
        values: dict[str, Any] = {
            "kafka": {
                "bootstrap_servers": self.bootstrap,
                "session_timeout_ms": SESSION_TIMEOUT_MS,
                "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
            },
            "topics": {
                "input": f"events-{suffix}",
                "output": f"results-{suffix}",
                "dead_letter": f"dead-letter-{suffix}",
                "partitions": PARTITIONS,
            },
            "worker": {
                "group_id": f"group-{suffix}",
                "processing_guarantee": guarantee,
                "batch_wait_ms": 50,
            },
            "model": {"uri": self.model_uri, "tracking_uri": self.tracking_uri},
            "metrics": {"port": 0},
            "logging": {"level": "INFO"},
        }
        for section, overrides in sections.items():
            values.setdefault(section, {}).update(overrides)
        settings = Settings(state_dir=self.run_dir / suffix, **values)
        ensure_topics(settings)
        return settings


def train_model(tracking_uri: str, state_dir: Path) -> str:
    """Train the spam pipeline on the first rows of the SMS data; return its alias URI."""
    from trainer.train import train

    state_dir.mkdir(parents=True, exist_ok=True)
    data_path = state_dir / "sms-chaos.tsv"
    lines = DATA.read_text(encoding="utf-8").splitlines(keepends=True)[:TRAINING_ROWS]
    data_path.write_text("".join(lines), encoding="utf-8")
    settings = Settings(
        state_dir=state_dir,
        model={"tracking_uri": tracking_uri},
        training={
            "data_path": data_path,
            "registered_model": MODEL_NAME,
            "experiment": MODEL_NAME,
            "n_estimators": TRAINING_TREES,
            "min_metrics": {"f1": 0.0},
        },
        logging={"level": "WARNING"},
    )
    train(settings)
    return MODEL_URI


def sms_events(count: int, prefix: str = "event") -> list[tuple[bytes, bytes]]:
    """Return `count` (key, value) events with the SMS texts repeated; keys are event ids."""
    lines = DATA.read_text(encoding="utf-8").splitlines()
    texts = [line.split("\t", 1)[1] for line in lines if "\t" in line]
    events = []
    for index in range(count):
        event_id = f"{prefix}-{index}"
        events.append(
            (event_id.encode(), encode_event(event_id, {"message": texts[index % len(texts)]}))
        )
    return events


class WorkerProcess:
    """`python -m stream` with a settings file, its log and its metrics port."""

    def __init__(self, settings: Settings, log_dir: Path, name: str) -> None:
        self.metrics_port = free_port()
        config = settings.model_dump(mode="json")
        config["metrics"]["port"] = self.metrics_port
        log_dir.mkdir(parents=True, exist_ok=True)
        config_path = log_dir / f"{name}.yaml"
        config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.log_path = log_dir / f"{name}.log"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - fixed command, no shell
                [sys.executable, "-m", "stream", "--config", str(config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    def metric(self, name: str) -> float | None:
        """Return the sum of a metric's samples, or None while /metrics does not respond."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                text = response.read().decode()
        except OSError:
            return None
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def readiness(self) -> int | None:
        """Return the HTTP status of /readyz: 200 ready, 503 not; None if it does not respond."""
        url = f"http://127.0.0.1:{self.metrics_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return None

    def wait_until_consuming(self, timeout_s: float = 60.0) -> None:
        """Wait until the worker has consumed at least one event.

        Raises:
            RuntimeError: the worker exited or consumed nothing in time.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {self.process.returncode}, see {self.log_path}"
                )
            consumed = self.metric("streamscore_events_consumed_total")
            if consumed:
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker consumed nothing within {timeout_s:g} s, see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye to the group."""
        self.process.kill()
        self.process.wait()

    def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, then wait for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    @property
    def is_running(self) -> bool:
        """Whether the process is alive."""
        return self.process.poll() is None


class PacedProducer(threading.Thread):
    """Publish events at a steady rate in the background, as a live source would."""

    def __init__(self, settings: Settings, events: list[tuple[bytes, bytes]], rate: float) -> None:
        super().__init__(name="paced-producer", daemon=True)
        self._settings = settings
        self._events = events
        self._rate = rate
        self.undelivered = 0
        self.error: str | None = None

    def run(self) -> None:
        """Publish every event; count those the broker never acknowledged."""
        producer = Producer(producer_config(self._settings.kafka))
        topic = self._settings.topics.input
        started = time.monotonic()
        for index, (key, value) in enumerate(self._events):
            delay = started + index / self._rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            while True:
                try:
                    producer.produce(topic, value, key)
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
        self.undelivered = producer.flush(120)
        if self.undelivered:
            self.error = f"{self.undelivered} input events were not delivered to the broker"

    def finish(self, timeout_s: float = 180.0) -> None:
        """Wait until every event was published.

        Raises:
            RuntimeError: publishing did not finish or some events were not delivered.
        """
        self.join(timeout_s)
        if self.is_alive():
            raise RuntimeError(f"publishing did not finish within {timeout_s:g} s")
        if self.error:
            raise RuntimeError(self.error)


def publish(settings: Settings, events: list[tuple[bytes, bytes]]) -> None:
    """Publish events at once and wait for the broker's acknowledgement of each."""
    producer = PacedProducer(settings, events, rate=float("inf"))
    producer.start()
    producer.finish()


class Tally:
    """Read the output and dead-letter topics with read_committed and count per event key."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        group = f"chaos-tally-{uuid.uuid4().hex[:8]}"
        self._consumer = Consumer(reader_config(settings.kafka, **{"group.id": group}))
        topics = (settings.topics.output, settings.topics.dead_letter)
        partitions = []
        for topic in topics:
            metadata = self._consumer.list_topics(topic, timeout=30)
            partitions += [
                TopicPartition(topic, p, OFFSET_BEGINNING)
                for p in metadata.topics[topic].partitions
            ]
        self._consumer.assign(partitions)
        self.results: Counter[bytes] = Counter()
        self.dead_letters: Counter[bytes] = Counter()

    def read(self, duration_s: float) -> None:
        """Read what arrives for `duration_s` seconds."""
        deadline = time.monotonic() + duration_s
        while time.monotonic() < deadline:
            for message in self._consumer.consume(1_000, 0.2):
                if message.error() is not None:
                    continue
                key = message.key() or b""
                if message.topic() == self._settings.topics.output:
                    self.results[key] += 1
                else:
                    self.dead_letters[key] += 1

    def wait_for(self, keys: set[bytes], timeout_s: float, settle_s: float = 3.0) -> None:
        """Read until every key has a record or the timeout passed, then `settle_s` longer."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not keys <= (
            self.results.keys() | self.dead_letters.keys()
        ):
            self.read(0.5)
        self.read(settle_s)

    def outcome(
        self, name: str, guarantee: str, keys: set[bytes], seconds: float, notes: list[str]
    ) -> Outcome:
        """Compare the records read with the events sent."""
        answered = self.results.keys() | self.dead_letters.keys()
        extra = sum(n - 1 for n in self.results.values() if n > 1)
        extra += sum(n - 1 for n in self.dead_letters.values() if n > 1)
        extra += len(self.results.keys() & self.dead_letters.keys())
        return Outcome(
            name=name,
            guarantee=guarantee,
            sent=len(keys),
            results_unique=len(self.results.keys() & keys),
            dead_lettered=len(self.dead_letters.keys() & keys),
            lost=len(keys - answered),
            duplicates=extra,
            seconds=seconds,
            notes=notes,
        )

    def close(self) -> None:
        """Leave the topics."""
        self._consumer.close()


def broker_hides_aborted_transactions(bootstrap: str) -> bool:
    """Return whether a read_committed reader of this broker skips aborted records.

    Kafka does. Tansu 0.6.0, the embedded broker, does not, so there a result written by a
    transaction that a SIGKILL left open is seen although the transaction was aborted.
    """
    topic = f"chaos-probe-{uuid.uuid4().hex[:8]}"
    settings = Settings(kafka={"bootstrap_servers": bootstrap}, topics={"input": topic})
    ensure_topics(settings)
    producer = Producer(
        producer_config(settings.kafka, **{"transactional.id": f"{topic}-producer"})
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, b"aborted")
    producer.flush(30)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, b"committed")
    producer.commit_transaction(30)
    consumer = Consumer(reader_config(settings.kafka, **{"group.id": f"{topic}-reader"}))
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    values: list[bytes | None] = []
    deadline = time.monotonic() + 30
    try:
        while b"committed" not in values and time.monotonic() < deadline:
            values += [m.value() for m in consumer.consume(100, 0.5) if m.error() is None]
    finally:
        consumer.close()
    return b"aborted" not in values
