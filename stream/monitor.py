"""Runtime signals of a worker: librdkafka statistics, rebalances, predictions, drift.

The worker calls the `on_*` hooks at the points they name, and passes `consumer_callbacks()`
to its consumer. The monitor turns them into metrics and into the state that /healthz and
/readyz report, so that the worker loop itself contains no monitoring logic.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import orjson
from confluent_kafka import KafkaError, TopicPartition

from stream.drift import DriftMonitor
from stream.health import Health
from stream.metrics import WorkerMetrics, observe_many
from stream.scorer import ScoredBatch, Scorer
from streamscore.events import Event
from streamscore.settings import Settings

logger = logging.getLogger(__name__)

# librdkafka statistics period in milliseconds: lag and broker state are at most this old.
# A consumer property `statistics.interval.ms` in kafka.consumer takes precedence.
STATISTICS_INTERVAL_MS = 5_000

PartitionKey = tuple[str, int]


class WorkerMonitor:
    """Metrics and health state fed by one worker's hooks and its consumer's callbacks.

    Owns the set of assigned partitions it exports lag for, and the drift monitor of the
    served model. librdkafka calls the callbacks from the worker thread, inside poll and
    consume, so nothing here needs a lock.
    """

    def __init__(self, settings: Settings, metrics: WorkerMetrics, health: Health) -> None:
        self._metrics = metrics
        self._health = health
        self._drift = DriftMonitor(settings.drift, metrics)
        self._default_positive_label = settings.training.positive_label
        self._assigned: set[PartitionKey] = set()
        # Offsets committed inside transactions, which librdkafka's statistics never see.
        self._committed_in_transactions: dict[PartitionKey, int] = {}
        self._scorer: Scorer | None = None
        self._positive_column: int | None = None
        self._is_all_down = False

    def consumer_callbacks(self, consumer_settings: dict[str, Any]) -> dict[str, Any]:
        """Return the consumer properties that deliver statistics and errors."""
        interval_ms = consumer_settings.get("statistics.interval.ms", STATISTICS_INTERVAL_MS)
        return {
            "statistics.interval.ms": interval_ms,
            "stats_cb": self.on_statistics,
            "error_cb": self.on_error,
        }

    def on_loop(self) -> None:
        """Record one turn of the worker loop, or one round of a wait inside it."""
        self._health.tick()

    def on_model(self, scorer: Scorer) -> None:
        """Record the model version now served, at start and after each swap."""
        self._scorer = scorer
        self._health.set_model(scorer.name, scorer.version)
        label = self._default_positive_label
        if scorer.baseline is not None and scorer.baseline.positive_label is not None:
            label = scorer.baseline.positive_label
        classes = scorer.classes
        self._positive_column = classes.index(label) if label in classes else None
        if self._positive_column is None:
            logger.info(
                "positive label not among the model's classes, score histogram off "
                "label=%s classes=%s",
                label,
                ",".join(classes),
            )

    def on_scored(self, events: list[Event], scored: ScoredBatch) -> None:
        """Count predicted labels, histogram the positive score and update feature drift."""
        self._count_predictions(scored)
        if scored.probabilities is not None and self._positive_column is not None:
            observe_many(
                self._metrics.positive_score, scored.probabilities[:, self._positive_column]
            )
        baseline = self._scorer.baseline if self._scorer is not None else None
        self._drift.observe(baseline, events)

    def _count_predictions(self, scored: ScoredBatch) -> None:
        if scored.probabilities is not None and scored.classes:
            best = scored.probabilities.argmax(axis=1)
            counts = np.bincount(best, minlength=len(scored.classes)).tolist()
            for label, count in zip(scored.classes, counts, strict=True):
                if count:
                    self._metrics.predictions.labels(label).inc(count)
            return
        for prediction in scored.predictions:
            if prediction is not None:
                self._metrics.predictions.labels(prediction.label).inc()

    def on_consume_error(self, error: KafkaError) -> None:
        """Count a consume error that took the place of a message."""
        self._metrics.events_skipped.labels(_error_name(error)).inc()

    def on_flush_wait(self, queued: int) -> None:
        """Record the producer queue depth before a flush and while it waits."""
        self._metrics.producer_queue.set(queued)
        self._health.tick()

    def on_assign(self, partitions: list[TopicPartition]) -> None:
        """Count an assignment, which also proves that the group coordinator was reached."""
        self._assigned.update((tp.topic, tp.partition) for tp in partitions)
        self._metrics.rebalances.labels("assigned").inc()
        self._health.set_assigned(len(self._assigned))
        self._health.set_group_joined(True)
        self._health.set_broker(None)

    def on_revoke(self, partitions: list[TopicPartition]) -> None:
        """Count a revocation and drop the lag of the revoked partitions."""
        self._metrics.rebalances.labels("revoked").inc()
        self._forget(partitions)

    def on_lost(self, partitions: list[TopicPartition]) -> None:
        """Count a loss of partitions and drop their lag."""
        self._metrics.rebalances.labels("lost").inc()
        self._forget(partitions)

    def _forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._assigned.discard((tp.topic, tp.partition))
            self._committed_in_transactions.pop((tp.topic, tp.partition), None)
            try:
                self._metrics.consumer_lag.remove(tp.topic, str(tp.partition))
            except KeyError:
                pass  # no statistics arrived for it while it was assigned
        self._health.set_assigned(len(self._assigned))

    def on_error(self, error: KafkaError) -> None:
        """Mark the broker unreachable when librdkafka reports every broker down."""
        if error.code() != KafkaError._ALL_BROKERS_DOWN:
            return
        self._health.set_broker(f"all brokers down: {error.str()}")
        # librdkafka reports this again after each failed reconnect round, so log the first only.
        if not self._is_all_down:
            logger.warning("all brokers down error=%s", error.str())
        self._is_all_down = True

    def on_transaction_committed(self, offsets: dict[PartitionKey, int]) -> None:
        """Record the input offsets an exactly_once batch committed with its transaction."""
        self._committed_in_transactions.update(offsets)

    def on_statistics(self, statistics_json: str) -> None:
        """Export the lag of each assigned partition and record broker and group state."""
        statistics = orjson.loads(statistics_json)
        problem = _broker_problem(statistics.get("brokers", {}))
        self._health.set_broker(problem)
        if problem is None and self._is_all_down:
            logger.info("broker reachable again")
            self._is_all_down = False
        group = statistics.get("cgrp") or {}
        self._health.set_group_joined(group.get("join_state") == "steady")
        for topic, topic_statistics in statistics.get("topics", {}).items():
            for partition_id, partition in topic_statistics.get("partitions", {}).items():
                partition_number = int(partition_id)
                lag = partition.get("consumer_lag", -1)
                committed = self._committed_in_transactions.get((topic, partition_number))
                stable_end = partition.get("ls_offset", -1)
                if committed is not None and stable_end >= 0:
                    # read_committed consumers see up to the last stable offset.
                    lag = max(0, stable_end - committed)
                # -1: librdkafka has no committed or end offset for it yet.
                if (topic, partition_number) not in self._assigned or lag < 0:
                    continue
                self._metrics.consumer_lag.labels(topic, partition_id).set(lag)


def _broker_problem(brokers: dict[str, Any]) -> str | None:
    """Return why no broker is usable, or None when one is connected (state UP)."""
    # The "logical" entries, such as GroupCoordinator, name a role, not a connection.
    real = [broker for broker in brokers.values() if broker.get("source") != "logical"]
    if any(broker.get("state") == "UP" for broker in real):
        return None
    states = ", ".join(f"{broker.get('name')} {broker.get('state')}" for broker in real)
    return f"no broker connection is up ({states or 'no brokers known'})"


def _error_name(error: KafkaError) -> str:
    """Return librdkafka's name of the error in lower case, a bounded set of label values."""
    return str(error.name()).lstrip("_").lower()
