"""Helpers for integration tests: produce raw messages, read topics, run a worker in a thread."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry

from stream.health import Health
from stream.metrics import WorkerMetrics
from stream.scorer import Scorer
from stream.worker import Worker
from streamscore.kafka import producer_config, reader_config
from streamscore.settings import Settings


@dataclass(frozen=True)
class Record:
    """A message read back from a topic."""

    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    partition: int
    offset: int


def produce(settings: Settings, values: list[tuple[bytes | None, bytes | None]]) -> None:
    """Produce (key, value) pairs to the input topic and wait for their delivery."""
    producer = Producer(producer_config(settings.kafka))
    for key, value in values:
        producer.produce(settings.topics.input, value, key)
    remaining = producer.flush(30)
    assert remaining == 0, f"{remaining} test events were not delivered"


def read_topic(
    settings: Settings, topic: str, expected: int, timeout_s: float = 60.0, settle_s: float = 0.0
) -> list[Record]:
    """Read a topic from the beginning until `expected` records arrived or the timeout passed.

    With `settle_s`, keep reading that long after reaching `expected`, to catch extra records.
    """
    consumer = Consumer(reader_config(settings.kafka, **{"group.id": f"reader-{uuid.uuid4()}"}))
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = metadata.topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    settle_deadline: float | None = None
    try:
        while time.monotonic() < deadline:
            if len(records) >= expected:
                settle_deadline = settle_deadline or time.monotonic() + settle_s
                if time.monotonic() >= settle_deadline:
                    break
            for message in consumer.consume(500, 0.2):
                if message.error() is None:
                    headers = {name: value for name, value in message.headers() or []}
                    records.append(
                        Record(
                            message.key(),
                            message.value(),
                            headers,
                            message.partition(),
                            message.offset(),
                        )
                    )
    finally:
        consumer.close()
    return records


@contextmanager
def running_worker(
    settings: Settings, scorer: Scorer, health: Health | None = None
) -> Iterator[WorkerMetrics]:
    """Run a worker in a thread for the duration of the block, then stop it gracefully."""
    metrics = WorkerMetrics(CollectorRegistry())
    worker = Worker(settings, scorer, metrics, health=health)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    thread = threading.Thread(target=run, name="worker", daemon=True)
    thread.start()
    try:
        yield metrics
    finally:
        worker.request_stop()
        thread.join(timeout=60)
    assert not thread.is_alive(), "the worker did not stop within 60 s"
    assert not errors, f"the worker raised {errors[0]!r}"


def wait_for(condition: object, timeout_s: float = 30.0, interval_s: float = 0.1) -> None:
    """Wait until `condition()` is true, failing the test after the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s:g} s")
