"""Shadow scoring: a candidate model scores live batches without publishing, for comparison."""

from __future__ import annotations

import logging

from stream.metrics import WorkerMetrics
from stream.scorer import ScoredBatch, Scorer
from streamscore.events import Event

logger = logging.getLogger(__name__)


def compare_with_shadow(
    shadow: Scorer, events: list[Event], served: ScoredBatch, metrics: WorkerMetrics
) -> None:
    """Score the batch with the shadow model and count where it agrees with the served one."""
    try:
        challenger = shadow.score(events)
    except Exception:  # a shadow model must never stop the served results
        logger.exception("shadow scoring failed name=%s version=%s", shadow.name, shadow.version)
        metrics.shadow_predictions.labels("failed").inc(len(events))
        return
    classes = challenger.classes
    for index, prediction in enumerate(served.predictions):
        other = challenger.predictions[index]
        if prediction is None:
            continue
        if other is None:
            metrics.shadow_predictions.labels("failed").inc()
            continue
        outcome = "agree" if other.label == prediction.label else "disagree"
        metrics.shadow_predictions.labels(outcome).inc()
        if challenger.probabilities is not None and prediction.label in classes:
            column = classes.index(prediction.label)
            other_probability = float(challenger.probabilities[index, column])
            difference = abs(other_probability - prediction.probability)
            metrics.shadow_probability_difference.observe(difference)
