"""Feature drift of the live events: a sliding window of bins and PSI gauges per feature."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from stream.metrics import WorkerMetrics
from streamscore.baseline import DriftBaseline, bin_proportions, psi
from streamscore.events import Event
from streamscore.settings import DriftSettings

logger = logging.getLogger(__name__)


class DriftWindow:
    """The bin index of each baseline feature for the last `size` events, in a ring buffer.

    Only bin indexes are kept (2 bytes per feature and event), so a window of 5,000 events of
    a text model takes 20 kB.
    """

    def __init__(self, baseline: DriftBaseline, size: int) -> None:
        self.baseline = baseline
        self.size = size
        self.count = 0
        self._position = 0
        self._bins = np.zeros((len(baseline.features), size), dtype=np.int16)

    def add(self, events: list[Event]) -> None:
        """Bin the features of a batch and let them replace the oldest events of the window."""
        newest = events[-self.size :]
        count = len(newest)
        if not count:
            return
        slots = (self._position + np.arange(count)) % self.size
        for row, feature in enumerate(self.baseline.features):
            values = [event.features.get(feature.column) for event in newest]
            self._bins[row, slots] = feature.bin_indexes(values)
        self._position = (self._position + count) % self.size
        self.count = min(self.size, self.count + count)

    def psi_by_feature(self) -> dict[str, float]:
        """Return the PSI of each feature: the window's bin shares against the baseline's."""
        result = {}
        for row, feature in enumerate(self.baseline.features):
            actual = bin_proportions(self._bins[row, : self.count], len(feature.proportions))
            if actual.sum() == 0:
                # Every event in the window lacked this optional field: no distribution to compare.
                continue
            result[feature.name] = psi(feature.proportions, actual)
        return result


class DriftMonitor:
    """Export the PSI of each feature of the served model's baseline, and the alert gauges.

    Owns the window of the baseline in use. When the worker swaps in a model with another
    baseline, the window starts empty, because bins of one baseline mean nothing to another,
    and the gauges of features the new baseline lacks are removed. A model without a baseline
    exports no drift.
    """

    def __init__(
        self,
        settings: DriftSettings,
        metrics: WorkerMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._window: DriftWindow | None = None
        self._baseline: DriftBaseline | None = None
        self._exported: set[str] = set()
        self._alerts: set[str] = set()
        self._computed_at = -float("inf")

    def observe(self, baseline: DriftBaseline | None, events: list[Event]) -> None:
        """Add a scored batch to the window; recompute the PSI when `interval_s` has passed."""
        if baseline is not self._baseline:
            self._switch(baseline)
        window = self._window
        if window is None:
            return
        window.add(events)
        now = self._clock()
        if window.count < self._settings.min_events:
            return
        if now - self._computed_at < self._settings.interval_s:
            return
        self._computed_at = now
        self._export(window.psi_by_feature())

    def _switch(self, baseline: DriftBaseline | None) -> None:
        self._baseline = baseline
        self._computed_at = -float("inf")
        self._window = None
        if baseline is not None and baseline.features:
            self._window = DriftWindow(baseline, self._settings.window_events)
        self._export({})

    def _export(self, values: dict[str, float]) -> None:
        threshold = self._settings.psi_threshold
        for name, value in values.items():
            self._metrics.feature_drift_psi.labels(name).set(value)
            self._metrics.drift_alert.labels(name).set(1 if value >= threshold else 0)
        alerts = {name for name, value in values.items() if value >= threshold}
        # Log changes only: the gauges carry the state between them.
        for name in sorted(alerts - self._alerts):
            logger.warning(
                "feature drift alert feature=%s psi=%.3f threshold=%g",
                name,
                values[name],
                threshold,
            )
        for name in sorted(self._alerts - alerts):
            logger.info("feature drift alert cleared feature=%s", name)
        self._alerts = alerts
        for name in self._exported - set(values):
            self._metrics.feature_drift_psi.remove(name)
            self._metrics.drift_alert.remove(name)
        self._exported = set(values)
