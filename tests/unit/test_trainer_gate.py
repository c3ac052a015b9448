"""The quality gate's decision from held-out metrics and the champion's metrics."""

from __future__ import annotations

import math

from streamscore.settings import TrainingSettings
from trainer.gate import ChampionEvaluation, decide

METRICS = {"precision": 0.9, "recall": 0.8, "f1": 0.85, "accuracy": 0.95, "roc_auc": 0.97}


def _champion(**metrics: float) -> ChampionEvaluation:
    return ChampionEvaluation(3, {**METRICS, **metrics})


def test_decide_without_champion_checks_minimums() -> None:
    decision = decide(METRICS, TrainingSettings(), None)

    assert decision.is_promoted is True
    assert decision.describe() == "gate: f1 0.8500, no champion -> promoted"
    assert decision.tags()["gate.champion_version"] == ""


def test_decide_below_minimum_rejects() -> None:
    training = TrainingSettings(min_metrics={"f1": 0.8, "recall": 0.9})

    decision = decide(METRICS, training, None)

    assert decision.is_promoted is False
    assert decision.reasons == ("recall 0.8000 < min 0.9000",)


def test_decide_worse_than_champion_rejects() -> None:
    decision = decide(METRICS, TrainingSettings(), _champion(f1=0.86))

    assert decision.is_promoted is False
    assert decision.describe() == (
        "gate: f1 0.8500 vs champion version 3 f1 0.8600 -> rejected: f1 0.8500 < champion 0.8600"
    )
    assert decision.champion_metrics()["champion_f1"] == 0.86


def test_decide_tie_with_champion_promotes() -> None:
    decision = decide(METRICS, TrainingSettings(), _champion())

    assert decision.is_promoted is True
    assert decision.tags() == {
        "gate.decision": "promoted",
        "gate.reason": "passed",
        "gate.metric": "f1",
        "gate.champion_version": "3",
    }


def test_decide_uses_configured_gate_metric() -> None:
    training = TrainingSettings(gate_metric="recall")

    decision = decide(METRICS, training, _champion(f1=0.99, recall=0.7))

    assert decision.is_promoted is True
    assert decision.metric == "recall"


def test_decide_nan_metric_fails_minimum() -> None:
    training = TrainingSettings(min_metrics={"roc_auc": 0.5})

    decision = decide({**METRICS, "roc_auc": math.nan}, training, None)

    assert decision.is_promoted is False
    assert decision.reasons == ("roc_auc nan < min 0.5000",)


def test_decide_unloadable_champion_uses_minimums() -> None:
    champion = ChampionEvaluation(3, None, "not loaded: artifact missing")

    decision = decide(METRICS, TrainingSettings(), champion)

    assert decision.is_promoted is True
    assert decision.describe() == (
        "gate: f1 0.8500 vs champion version 3 (not loaded: artifact missing) -> promoted"
    )
    assert decision.champion_metrics() == {}


def test_decide_incomparable_champion_rejects() -> None:
    champion = ChampionEvaluation(3, None, "inputs [message string]", is_comparable=False)

    decision = decide(METRICS, TrainingSettings(), champion)

    assert decision.is_promoted is False
    assert decision.reasons == (
        "champion version 3 is not comparable; move the alias with `streamscore promote`",
    )
