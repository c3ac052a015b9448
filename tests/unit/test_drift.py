"""DriftMonitor: window, PSI gauges, alerts and model swaps, with a fake clock."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry

from stream.drift import DriftMonitor, DriftWindow
from stream.metrics import WorkerMetrics
from streamscore.baseline import DriftBaseline, build_baseline
from streamscore.events import Event
from streamscore.settings import DriftSettings


def _baseline() -> DriftBaseline:
    rng = random.Random(1)  # noqa: S311 - test data
    amounts = [rng.gauss(100, 20) for _ in range(5_000)]
    return build_baseline({"amount": amounts}, ["amount"], [], "fraud")


def _events(mean: float, count: int, seed: int) -> list[Event]:
    rng = random.Random(seed)  # noqa: S311 - test data
    return [Event(f"e{i}", None, None, {"amount": rng.gauss(mean, 20)}) for i in range(count)]


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _monitor(**settings: float) -> tuple[DriftMonitor, WorkerMetrics, _Clock]:
    metrics = WorkerMetrics(CollectorRegistry())
    clock = _Clock()
    values = {"window_events": 1_000, "min_events": 500, "interval_s": 10.0, **settings}
    return DriftMonitor(DriftSettings(**values), metrics, clock), metrics, clock


def _psi(metrics: WorkerMetrics, feature: str) -> float | None:
    return metrics.registry.get_sample_value("streamscore_feature_drift_psi", {"feature": feature})


def _alert(metrics: WorkerMetrics, feature: str) -> float | None:
    return metrics.registry.get_sample_value("streamscore_drift_alert", {"feature": feature})


def test_drift_in_distribution_no_alert() -> None:
    monitor, metrics, _ = _monitor()

    monitor.observe(_baseline(), _events(100, 1_000, seed=2))

    assert _psi(metrics, "amount") < 0.05
    assert _alert(metrics, "amount") == 0


def test_drift_shifted_distribution_alerts() -> None:
    monitor, metrics, _ = _monitor()

    monitor.observe(_baseline(), _events(160, 1_000, seed=3))

    assert _psi(metrics, "amount") > 0.2
    assert _alert(metrics, "amount") == 1


def test_drift_nothing_exported_below_min_events() -> None:
    monitor, metrics, _ = _monitor()

    monitor.observe(_baseline(), _events(160, 499, seed=4))

    assert _psi(metrics, "amount") is None


def test_drift_recomputed_only_after_interval() -> None:
    monitor, metrics, clock = _monitor()
    baseline = _baseline()
    monitor.observe(baseline, _events(100, 1_000, seed=5))

    monitor.observe(baseline, _events(160, 1_000, seed=6))
    assert _alert(metrics, "amount") == 0

    clock.now = 10.0
    monitor.observe(baseline, _events(160, 10, seed=7))
    assert _alert(metrics, "amount") == 1


def test_drift_window_keeps_newest_events() -> None:
    window = DriftWindow(_baseline(), size=100)

    window.add(_events(160, 250, seed=8))
    window.add(_events(100, 70, seed=9))

    assert window.count == 100
    shifted_only = DriftWindow(_baseline(), size=100)
    shifted_only.add(_events(160, 100, seed=8))
    assert window.psi_by_feature()["amount"] < shifted_only.psi_by_feature()["amount"]


def test_drift_model_without_baseline_removes_gauges() -> None:
    monitor, metrics, _ = _monitor()
    monitor.observe(_baseline(), _events(100, 1_000, seed=10))

    monitor.observe(None, _events(100, 1_000, seed=11))

    assert _psi(metrics, "amount") is None
    assert _alert(metrics, "amount") is None


def test_drift_new_baseline_starts_empty_window() -> None:
    monitor, metrics, _ = _monitor()
    monitor.observe(_baseline(), _events(160, 1_000, seed=12))

    monitor.observe(_baseline(), _events(100, 100, seed=13))

    assert _psi(metrics, "amount") is None
