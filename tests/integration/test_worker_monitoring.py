"""Runtime metrics of a worker against the real broker: lag, commits, rebalances, predictions.

Also proves that the label sets stay bounded: ids and keys never become label values.
"""

from __future__ import annotations

import uuid

import orjson
import pandas as pd

from stream.metrics import WorkerMetrics
from streamscore.events import encode_event
from tests.integration.helpers import produce, running_worker, wait_for
from tests.tiny_model import tiny_pipeline, tiny_scorer

MESSAGES = ["free prize claim now", "lunch at the station", "urgent cash reward", "milk at home"]
# librdkafka statistics period of these tests, in milliseconds, so lag appears within a second.
STATISTICS_INTERVAL_MS = 500


def _events(count: int, tag: str) -> list[tuple[bytes, bytes]]:
    events = []
    for index in range(count):
        event_id = f"{tag}-{index}-{uuid.uuid4().hex}"
        key = f"key-{uuid.uuid4().hex}".encode()
        events.append((key, encode_event(event_id, {"message": MESSAGES[index % 4]})))
    return events


def _poison(tag: str) -> list[tuple[bytes, bytes]]:
    """Return one event per dead-letter reason, with an id and key of their own."""
    return [
        (f"{tag}-json-{uuid.uuid4().hex}".encode(), b"{not json"),
        (
            f"{tag}-field-{uuid.uuid4().hex}".encode(),
            orjson.dumps({"event_id": f"{tag}-{uuid.uuid4().hex}"}),
        ),
    ]


def _series(metrics: WorkerMetrics) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in metrics.registry.collect()
        for sample in family.samples
    }


def _value(metrics: WorkerMetrics, name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.registry.get_sample_value(name, labels or {}) or 0.0


def _lag_partitions(metrics: WorkerMetrics) -> set[str]:
    return {
        sample.labels["partition"]
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "streamscore_consumer_lag"
    }


def test_worker_labels_bounded_for_distinct_ids(settings_factory) -> None:
    settings = settings_factory(
        kafka={"consumer": {"statistics.interval.ms": STATISTICS_INTERVAL_MS}},
        worker={"batch_size": 2_000},
    )
    warm_up = _events(1_000, "warm") + _poison("warm")
    produce(settings, warm_up)

    with running_worker(settings, tiny_scorer()) as metrics:
        wait_for(lambda: _value(metrics, "streamscore_events_consumed_total") == len(warm_up))
        wait_for(lambda: _lag_partitions(metrics) == {"0", "1"})
        wait_for(lambda: _value(metrics, "streamscore_commits_total") > 0)
        before = _series(metrics)

        burst = _events(100_000, "burst") + _poison("burst")
        # In parts: the producer's local queue holds 100,000 messages at most.
        for start in range(0, len(burst), 20_000):
            produce(settings, burst[start : start + 20_000])
        total = len(warm_up) + len(burst)
        wait_for(lambda: _value(metrics, "streamscore_events_consumed_total") == total, 120)
        after = _series(metrics)

    assert after - before == set()
    assert before - after == set()
    assert _value(metrics, "streamscore_results_produced_total") == 101_000
    assert any(name.startswith("process_") for name, _ in after)
    assert any(name.startswith("python_gc_") for name, _ in after)


def test_worker_exports_lag_commits_and_rebalances(settings_factory) -> None:
    settings = settings_factory(
        kafka={"consumer": {"statistics.interval.ms": STATISTICS_INTERVAL_MS}}
    )
    events = _events(200, "lag")
    produce(settings, events)

    with running_worker(settings, tiny_scorer()) as metrics:
        wait_for(lambda: _value(metrics, "streamscore_events_consumed_total") == 200)
        # Lag reaches 0 once the auto-commit (every 5 s) has committed the stored offsets.
        wait_for(
            lambda: (
                _lag_partitions(metrics) == {"0", "1"}
                and all(
                    _value(metrics, "streamscore_consumer_lag", {"topic": t, "partition": p}) == 0
                    for t, p in [(settings.topics.input, "0"), (settings.topics.input, "1")]
                )
            )
        )
        commits = _value(metrics, "streamscore_commits_total")

    assert commits >= 1
    assert _value(metrics, "streamscore_commit_failures_total") == 0
    assert _value(metrics, "streamscore_rebalances_total", {"event": "assigned"}) >= 1
    # The graceful stop revokes every partition and drops its lag series.
    assert _value(metrics, "streamscore_rebalances_total", {"event": "revoked"}) >= 1
    assert _lag_partitions(metrics) == set()
    assert _value(metrics, "streamscore_producer_queue_messages") == 0


def test_worker_counts_predictions_per_label(settings_factory) -> None:
    settings = settings_factory()
    events = _events(40, "labels")
    produce(settings, events)
    expected = tiny_pipeline().predict(pd.DataFrame({"message": MESSAGES}))
    spam_per_cycle = sum(1 for label in expected if label == "spam")

    with running_worker(settings, tiny_scorer()) as metrics:
        wait_for(lambda: _value(metrics, "streamscore_results_produced_total") == 40)

    spam = _value(metrics, "streamscore_predictions_total", {"label": "spam"})
    ham = _value(metrics, "streamscore_predictions_total", {"label": "ham"})
    assert spam == 10 * spam_per_cycle
    assert ham == 40 - spam
    assert _value(metrics, "streamscore_positive_score_count") == 40
    assert _value(metrics, "streamscore_positive_score_bucket", {"le": "1.0"}) == 40


def test_worker_counts_consume_errors_as_skipped(settings_factory) -> None:
    settings = settings_factory(kafka={"consumer": {"enable.partition.eof": True}})
    produce(settings, _events(3, "eof"))

    with running_worker(settings, tiny_scorer()) as metrics:
        wait_for(lambda: _value(metrics, "streamscore_results_produced_total") == 3)
        wait_for(
            lambda: (
                _value(metrics, "streamscore_events_skipped_total", {"reason": "partition_eof"})
                >= 2
            )
        )

    assert _value(metrics, "streamscore_events_consumed_total") == 3
