"""observe_many adds to a histogram exactly what one observe per value adds."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

from stream.metrics import observe_many

BUCKETS = (0.01, 0.1, 1.0, 10.0)
VALUES = [0.0, 0.01, 0.0100001, 0.05, 0.1, 0.5, 1.0, 9.99, 10.0, 10.5, 1_000.0]


def _samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for metric in histogram.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    }


def _histogram() -> Histogram:
    return Histogram("latency_seconds", "test", buckets=BUCKETS, registry=CollectorRegistry())


def test_observe_many_matches_observe() -> None:
    one_by_one = _histogram()
    for value in VALUES:
        one_by_one.observe(value)
    at_once = _histogram()

    observe_many(at_once, VALUES)

    assert _samples(at_once) == _samples(one_by_one)


def test_observe_many_empty_changes_nothing() -> None:
    histogram = _histogram()
    before = _samples(histogram)

    observe_many(histogram, [])

    assert _samples(histogram) == before
