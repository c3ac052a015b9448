"""WorkerMonitor: lag and broker state from librdkafka statistics, and rebalances."""

from __future__ import annotations

import orjson
from confluent_kafka import KafkaError, TopicPartition
from prometheus_client import CollectorRegistry

from stream.health import Health
from stream.metrics import WorkerMetrics
from stream.monitor import WorkerMonitor
from streamscore.settings import Settings


def _monitor() -> tuple[WorkerMonitor, WorkerMetrics, Health]:
    metrics = WorkerMetrics(CollectorRegistry())
    health = Health(stall_limit_s=60)
    return WorkerMonitor(Settings(), metrics, health), metrics, health


def _statistics(lags: dict[str, int], broker_state: str = "UP") -> str:
    partitions = {pid: {"partition": int(pid), "consumer_lag": lag} for pid, lag in lags.items()}
    return orjson.dumps(
        {
            "brokers": {
                "GroupCoordinator": {
                    "name": "GroupCoordinator",
                    "source": "logical",
                    "state": "UP",
                },
                "b:9092/1": {"name": "b:9092/1", "source": "learned", "state": broker_state},
            },
            "cgrp": {"state": "up", "join_state": "steady"},
            "topics": {"events": {"partitions": partitions}},
        }
    ).decode()


def _lag(metrics: WorkerMetrics, partition: str) -> float | None:
    labels = {"topic": "events", "partition": partition}
    return metrics.registry.get_sample_value("streamscore_consumer_lag", labels)


def test_monitor_lag_of_assigned_partitions_only() -> None:
    monitor, metrics, _ = _monitor()
    monitor.on_assign([TopicPartition("events", 0), TopicPartition("events", 1)])

    monitor.on_statistics(_statistics({"0": 12, "1": -1, "2": 7, "-1": 3}))

    assert _lag(metrics, "0") == 12
    assert _lag(metrics, "1") is None
    assert _lag(metrics, "2") is None
    assert _lag(metrics, "-1") is None


def test_monitor_revoke_removes_lag() -> None:
    monitor, metrics, _ = _monitor()
    monitor.on_assign([TopicPartition("events", 0), TopicPartition("events", 1)])
    monitor.on_statistics(_statistics({"0": 12, "1": 4}))

    monitor.on_revoke([TopicPartition("events", 0)])
    monitor.on_lost([TopicPartition("events", 1)])

    assert _lag(metrics, "0") is None
    assert _lag(metrics, "1") is None
    rebalances = metrics.registry.get_sample_value
    assert rebalances("streamscore_rebalances_total", {"event": "assigned"}) == 1
    assert rebalances("streamscore_rebalances_total", {"event": "revoked"}) == 1
    assert rebalances("streamscore_rebalances_total", {"event": "lost"}) == 1


def test_monitor_broker_down_in_statistics() -> None:
    monitor, _, health = _monitor()

    monitor.on_statistics(_statistics({}, broker_state="DOWN"))

    _, body = health.readiness()
    assert body["checks"]["broker"] == {
        "ok": False,
        "detail": "no broker connection is up (b:9092/1 DOWN)",
    }


def test_monitor_all_brokers_down_error() -> None:
    monitor, _, health = _monitor()
    monitor.on_statistics(_statistics({}))

    monitor.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))

    _, body = health.readiness()
    assert body["checks"]["broker"]["detail"] == "all brokers down: 1/1 brokers are down"


def test_monitor_statistics_interval_default_and_override() -> None:
    monitor, _, _ = _monitor()

    assert monitor.consumer_callbacks({})["statistics.interval.ms"] == 5_000
    assert (
        monitor.consumer_callbacks({"statistics.interval.ms": 500})["statistics.interval.ms"] == 500
    )
