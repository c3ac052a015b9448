"""Delivery guarantees against the real broker: transactions, fencing, failed deliveries."""

from __future__ import annotations

import logging
import threading
from collections import Counter

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry

from stream.metrics import WorkerMetrics
from stream.worker import TransactionFencedError, Worker
from streamscore.events import encode_event
from streamscore.kafka import consumer_config, producer_config
from streamscore.settings import Settings
from tests.integration.helpers import produce, read_topic, running_worker, wait_for
from tests.tiny_model import tiny_scorer


def _events(count: int, prefix: str = "event") -> list[tuple[bytes, bytes]]:
    return [
        (f"{prefix}-{i}".encode(), encode_event(f"{prefix}-{i}", {"message": f"free prize {i}"}))
        for i in range(count)
    ]


def _committed(settings: Settings) -> int:
    """Return the sum of the group's committed input offsets."""
    return sum(max(offset, 0) for offset in _committed_by_partition(settings))


def _committed_by_partition(settings: Settings) -> list[int]:
    """Return the group's committed offset of each input partition; negative where none."""
    consumer = Consumer(consumer_config(settings.kafka, settings.worker.group_id))
    try:
        partitions = [
            TopicPartition(settings.topics.input, p) for p in range(settings.topics.partitions)
        ]
        return [tp.offset for tp in consumer.committed(partitions, timeout=10)]
    finally:
        consumer.close()


def _lags(metrics: WorkerMetrics) -> list[float]:
    return [
        sample.value
        for family in metrics.registry.collect()
        if family.name == "streamscore_consumer_lag"
        for sample in family.samples
    ]


def _sample(metrics: WorkerMetrics, name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.registry.get_sample_value(name, labels or {}) or 0.0


def test_exactly_once_commits_results_and_offsets_together(settings_factory) -> None:
    settings = settings_factory(
        worker={"processing_guarantee": "exactly_once", "batch_size": 40},
        kafka={"consumer": {"statistics.interval.ms": 500}},
    )
    events = _events(200)
    produce(settings, events)

    with running_worker(settings, tiny_scorer()) as metrics:
        records = read_topic(settings, settings.topics.output, expected=200, settle_s=1.0)
        wait_for(lambda: _committed(settings) == 200)
        # librdkafka's own lag ignores offsets committed in a transaction.
        wait_for(lambda: _lags(metrics) == [0.0, 0.0])

    counts = Counter(record.key for record in records)
    assert set(counts) == {key for key, _ in events}
    assert max(counts.values()) == 1
    assert _sample(metrics, "streamscore_transactions_total", {"outcome": "committed"}) >= 5
    assert _sample(metrics, "streamscore_transactions_total", {"outcome": "aborted"}) == 0


def test_reused_transactional_id_fences_old_worker(settings_factory) -> None:
    settings = settings_factory(
        worker={"processing_guarantee": "exactly_once", "transactional_id": "fencing-test"}
    )
    first_events = _events(100, "first")
    produce(settings, first_events)
    old = Worker(settings, tiny_scorer(), WorkerMetrics(CollectorRegistry()))
    errors: list[BaseException] = []

    def run_old() -> None:
        try:
            old.run()
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=run_old, daemon=True)
    thread.start()
    read_topic(settings, settings.topics.output, expected=100)

    # A second worker initialises the same transactional id, as a restarted one would, and
    # joins the group. The old one still owns a partition and runs, but can no longer commit.
    second_events = _events(100, "second")
    with running_worker(settings, tiny_scorer()) as metrics:
        wait_for(lambda: _sample(metrics, "streamscore_assigned_partitions") > 0)
        produce(settings, second_events)
        records = read_topic(settings, settings.topics.output, expected=200, settle_s=2.0)
        thread.join(timeout=60)

    counts = Counter(record.key for record in records)
    assert not thread.is_alive(), "the fenced worker kept running"
    assert len(errors) == 1 and isinstance(errors[0], TransactionFencedError), errors
    assert set(counts) == {key for key, _ in first_events + second_events}
    assert max(counts.values()) == 1


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_undeliverable_results_are_not_committed_and_retried_later(
    settings_factory, guarantee: str
) -> None:
    # Results carry the event id, so with 1,100-character ids each is larger than the
    # producer's message.max.bytes and can never be delivered.
    settings = settings_factory(worker={"processing_guarantee": guarantee, "retry_backoff_s": 0.2})
    events = _events(20, "x" * 1_100)
    produce(settings, events)
    small = settings.kafka.model_copy(update={"producer": {"message.max.bytes": 1_000}})
    failing = settings.model_copy(update={"kafka": small})

    with running_worker(failing, tiny_scorer()) as metrics:
        wait_for(
            lambda: (
                _sample(metrics, "streamscore_delivery_failures_total", {"topic": "output"}) >= 20
            )
        )
        committed_while_failing = _committed(settings)

    with running_worker(settings, tiny_scorer()):
        records = read_topic(settings, settings.topics.output, expected=20, settle_s=1.0)

    assert committed_while_failing == 0
    assert {record.key for record in records} == {key for key, _ in events}
    assert len(records) == 20


def test_failed_delivery_holds_back_only_its_partition(
    settings_factory, caplog: pytest.LogCaptureFixture
) -> None:
    # Batches of 8 keep a batch in flight while the next is scored. The result of the event at
    # offset 10 of partition 0 exceeds message.max.bytes, so it fails on every attempt.
    settings = settings_factory(worker={"batch_size": 8, "retry_backoff_s": 0.2})
    partitions = settings.topics.partitions
    per_partition = 20
    bad_offset = 10
    producer = Producer(producer_config(settings.kafka))
    for partition in range(partitions):
        for offset in range(per_partition):
            event_id = f"p{partition}-{offset}"
            if partition == 0 and offset == bad_offset:
                event_id = "x" * 1_100
            value = encode_event(event_id, {"message": f"free prize {offset}"})
            producer.produce(settings.topics.input, value, event_id.encode(), partition=partition)
    assert producer.flush(10) == 0
    small = settings.kafka.model_copy(update={"producer": {"message.max.bytes": 1_000}})
    failing = settings.model_copy(update={"kafka": small})
    healthy = {f"p{p}-{o}" for p in range(1, partitions) for o in range(per_partition)}
    before_bad = {f"p0-{o}" for o in range(bad_offset)}

    with (
        caplog.at_level(logging.WARNING, logger="stream.worker"),
        running_worker(failing, tiny_scorer()) as metrics,
    ):
        wait_for(
            lambda: (
                _sample(metrics, "streamscore_delivery_failures_total", {"topic": "output"}) >= 4
                and _sample(metrics, "streamscore_results_produced_total")
                >= len(healthy | before_bad)
            )
        )
    records = read_topic(settings, settings.topics.output, expected=len(healthy | before_bad))
    committed = _committed_by_partition(settings)

    scored = Counter(record.key.decode() for record in records)
    attempts = [
        int(record.getMessage().split("attempt=")[1].split()[0])
        for record in caplog.records
        if "after backoff" in record.getMessage()
    ]
    assert partitions > 1
    assert healthy <= set(scored)
    assert before_bad <= set(scored)
    assert committed[0] == bad_offset
    assert committed[1:] == [per_partition] * (partitions - 1)
    # The failed event is retried alone, so nothing behind it is produced twice, and each
    # retry waits twice as long as the one before.
    assert max(scored.values()) == 1
    assert attempts[:3] == [1, 2, 3]
