"""Feature drift end to end: the trainer saves a baseline, the worker compares live events."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from stream.metrics import WorkerMetrics
from stream.scorer import Scorer
from streamscore.baseline import BASELINE_ARTIFACT
from streamscore.events import encode_event
from streamscore.settings import Settings, load_settings
from tests.integration.helpers import produce, running_worker, wait_for
from tests.integration.registry import register
from tests.integration.trainer_helpers import TABULAR_CONFIG, TRANSACTIONS_DATA, tracking_uri_in
from trainer.train import train

FEATURES = ["amount", "hour", "country", "channel"]
WINDOW_EVENTS = 500


def _payments(count: int) -> list[dict[str, Any]]:
    lines = TRANSACTIONS_DATA.with_suffix(".jsonl").read_text(encoding="utf-8").splitlines()
    return [{name: json.loads(line)[name] for name in FEATURES} for line in lines[:count]]


def _encoded(payments: list[dict[str, Any]], tag: str) -> list[tuple[bytes, bytes]]:
    return [
        (f"{tag}-{index}".encode(), encode_event(f"{tag}-{index}", payment))
        for index, payment in enumerate(payments)
    ]


def _gauge(metrics: WorkerMetrics, name: str, feature: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"feature": feature})


def _trained_tabular(settings_factory: Callable[..., Settings], tmp_path: Path) -> Settings:
    tabular = load_settings(
        TABULAR_CONFIG,
        state_dir=tmp_path / "state",
        model={"tracking_uri": tracking_uri_in(tmp_path)},
        training={"data_path": TRANSACTIONS_DATA, "n_estimators": 10},
    )
    train(tabular)
    return settings_factory(
        model=tabular.model.model_dump(),
        training=tabular.training.model_dump(),
        drift={"window_events": WINDOW_EVENTS, "min_events": WINDOW_EVENTS, "interval_s": 0},
    )


def test_drift_shifted_amounts_raise_alert(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = _trained_tabular(settings_factory, tmp_path)
    scorer = Scorer.from_registry(
        settings.model.uri, settings.model.tracking_uri, settings.worker.max_event_bytes
    )
    assert scorer.baseline is not None
    assert [feature.name for feature in scorer.baseline.features] == ["amount", "hour"]
    assert scorer.baseline.positive_label == "fraud"
    usual = _payments(1_000)
    # Twenty times the usual amounts at the usual hours: only the amount drifts.
    shifted = [{**payment, "amount": payment["amount"] * 20} for payment in usual]

    with running_worker(settings, scorer) as metrics:
        produce(settings, _encoded(usual, "usual"))
        wait_for(lambda: metrics.results_produced._value.get() == len(usual))
        usual_psi = _gauge(metrics, "streamscore_feature_drift_psi", "amount")
        usual_alert = _gauge(metrics, "streamscore_drift_alert", "amount")
        usual_hour_alert = _gauge(metrics, "streamscore_drift_alert", "hour")

        produce(settings, _encoded(shifted, "shifted"))
        wait_for(lambda: metrics.results_produced._value.get() == len(usual) + len(shifted))
        shifted_psi = _gauge(metrics, "streamscore_feature_drift_psi", "amount")
        shifted_alert = _gauge(metrics, "streamscore_drift_alert", "amount")
        shifted_hour_alert = _gauge(metrics, "streamscore_drift_alert", "hour")

    assert usual_psi is not None
    assert usual_psi < settings.drift.psi_threshold
    assert usual_alert == 0
    assert usual_hour_alert == 0
    assert shifted_psi is not None
    assert shifted_psi >= settings.drift.psi_threshold
    assert shifted_alert == 1
    assert shifted_hour_alert == 0
    fraud_scores = metrics.registry.get_sample_value("streamscore_positive_score_count")
    assert fraud_scores == len(usual) + len(shifted)


def test_drift_text_model_baseline_describes_message(
    registered_model: str, tracking_uri: str
) -> None:
    scorer = Scorer.from_registry(registered_model, tracking_uri, 100_000)

    assert scorer.baseline is not None
    names = [feature.name for feature in scorer.baseline.features]
    assert names == ["message_length", "message_tokens"]
    assert all(feature.column == "message" for feature in scorer.baseline.features)
    artifacts = MlflowClient(tracking_uri=tracking_uri).list_artifacts(scorer.run_id)
    assert BASELINE_ARTIFACT in [artifact.path for artifact in artifacts]


def test_drift_model_without_baseline_exports_none(
    settings_factory: Callable[..., Settings],
    tracking_uri: str,
    artifact_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = f"no-baseline-{uuid.uuid4().hex[:8]}"
    register(tracking_uri, name, artifact_dir)
    settings = settings_factory(drift={"min_events": 10, "interval_s": 0})

    with caplog.at_level(logging.INFO, logger="stream.scorer"):
        scorer = Scorer.from_registry(f"models:/{name}@champion", tracking_uri, 100_000)
    with running_worker(settings, scorer) as metrics:
        produce(settings, [(b"k", encode_event(f"e-{i}", {"message": "hi"})) for i in range(20)])
        wait_for(lambda: metrics.results_produced._value.get() == 20)

    assert scorer.baseline is None
    notes = [r.getMessage() for r in caplog.records if "no drift baseline" in r.getMessage()]
    assert len(notes) == 1
    drift_samples = [
        sample
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name in ("streamscore_feature_drift_psi", "streamscore_drift_alert")
    ]
    assert drift_samples == []
