"""Prometheus metrics of the worker, all in one place, all with bounded label values."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
)

from stream.health import Health, serve

NAMESPACE = "streamscore"

# Batch sizes up to the largest allowed worker.batch_size (100,000).
_BATCH_SIZE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 100_000)
# Seconds; scoring a batch takes from under a millisecond to seconds for large forests.
_SCORING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
# Seconds from event time to delivered result; a backlog can make this minutes.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# Probability differences lie between 0 and 1.
_DIFFERENCE_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
# Probabilities of the positive class, in tenths.
_SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class WorkerMetrics:
    """The worker's metrics, registered in one registry (a fresh one per test).

    Label values are bounded: reasons, outcomes and events are fixed sets, topics and partitions
    come from the settings and the broker, labels and features from the served model. No label
    takes an event id, a key or a payload value.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        # The default registry contains these two already, and each worker registry needs its own.
        if self.registry is not REGISTRY:
            ProcessCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        self.events_consumed = Counter(
            "events_consumed",
            "Events read from the input topic.",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.results_produced = Counter(
            "results_produced",
            "Results delivered to the output topic.",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.events_dead_lettered = Counter(
            "events_dead_lettered",
            "Events delivered to the dead-letter topic, by reason.",
            ["reason"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.delivery_failures = Counter(
            "delivery_failures",
            "Results or dead-letter records whose delivery failed; their events are re-read.",
            ["topic"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "batch_size_events",
            "Events per polled batch.",
            buckets=_BATCH_SIZE_BUCKETS,
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.scoring_duration = Histogram(
            "scoring_duration_seconds",
            "Time of one predict_proba call over a batch.",
            buckets=_SCORING_BUCKETS,
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.end_to_end_latency = Histogram(
            "end_to_end_latency_seconds",
            "Time from an event's event_time to the delivery report of its result.",
            buckets=_LATENCY_BUCKETS,
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.model_info = Gauge(
            "model_info",
            "The model version being served; the value is always 1.",
            ["name", "version", "run_id"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.model_reloads = Counter(
            "model_reloads",
            "Model versions loaded after an alias moved, by outcome (success or failed).",
            ["outcome"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.shadow_model_info = Gauge(
            "shadow_model_info",
            "The shadow model version scoring alongside; the value is always 1.",
            ["name", "version", "run_id"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.shadow_predictions = Counter(
            "shadow_predictions",
            "Events scored by the shadow model, by outcome (agree, disagree or failed).",
            ["outcome"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.shadow_probability_difference = Histogram(
            "shadow_probability_difference",
            "Absolute difference of the probabilities the two models give the served label.",
            buckets=_DIFFERENCE_BUCKETS,
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.commits = Counter(
            "commits",
            "Offset commits of the at_least_once worker, automatic and on revoke or stop.",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.commit_failures = Counter(
            "commit_failures",
            "Offset commits that failed; their events are read again by the next owner.",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.transactions = Counter(
            "transactions",
            "Transactions of the exactly_once worker, by outcome (committed or aborted).",
            ["outcome"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.assigned_partitions = Gauge(
            "assigned_partitions",
            "Input partitions assigned to this worker.",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self._add_runtime_metrics()
        self._add_model_monitoring_metrics()

    def serve(self, host: str, port: int, health: Health | None = None) -> int:
        """Serve `/metrics` (and, with `health`, the probes) in a thread; return the port.

        Raises:
            StreamscoreError: the address is in use or cannot be bound.
        """
        return serve(host, port, self.registry, health).port

    def _add_runtime_metrics(self) -> None:
        self.events_skipped = Counter(
            "events_skipped",
            "Consumed messages neither scored nor dead-lettered, by reason (a librdkafka error).",
            ["reason"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "consumer_lag",
            "Messages between the committed offset and the end of an assigned input partition.",
            ["topic", "partition"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.rebalances = Counter(
            "rebalances",
            "Rebalance callbacks, by event (assigned, revoked or lost).",
            ["event"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.producer_queue = Gauge(
            "producer_queue_messages",
            "Messages in the producer's local queue, sampled before and during each flush.",
            namespace=NAMESPACE,
            registry=self.registry,
        )

    def _add_model_monitoring_metrics(self) -> None:
        self.predictions = Counter(
            "predictions",
            "Scored events, by predicted label.",
            ["label"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.positive_score = Histogram(
            "positive_score",
            "Probability the served model gives the positive class, per scored event.",
            buckets=_SCORE_BUCKETS,
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.feature_drift_psi = Gauge(
            "feature_drift_psi",
            "Population stability index of a feature: live window against training baseline.",
            ["feature"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.drift_alert = Gauge(
            "drift_alert",
            "1 while a feature's PSI is at least drift.psi_threshold, else 0.",
            ["feature"],
            namespace=NAMESPACE,
            registry=self.registry,
        )


def observe_many(histogram: Histogram, values: Sequence[float] | np.ndarray) -> None:
    """Observe many values with one increment per bucket instead of one call per value.

    `Histogram.observe` takes a lock and scans the buckets in Python for every value. This
    counts values per bucket with numpy and adds the counts through the histogram's internal
    bucket values (prometheus_client 0.26); if those internals are missing, it observes each
    value.
    """
    if len(values) == 0:
        return
    upper_bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if upper_bounds is None or buckets is None or total is None:
        for value in values:
            histogram.observe(value)
        return
    # observe() puts a value in the first bucket whose upper bound is >= the value.
    indexes = np.searchsorted(np.asarray(upper_bounds), np.asarray(values), side="left")
    for index, count in enumerate(np.bincount(indexes, minlength=len(upper_bounds)).tolist()):
        if count:
            buckets[index].inc(count)
    total.inc(float(np.sum(values)))
