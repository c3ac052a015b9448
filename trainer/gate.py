"""The quality gate: whether a new model version may take the serving alias.

A new version passes when every metric in `training.min_metrics` reaches its minimum and its
`training.gate_metric` is not lower than the current champion's on the same held-out rows. A
tie passes, so retraining on unchanged data moves the alias to the newest version.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow.models import ModelSignature

from streamscore.settings import TrainingSettings
from trainer.pipeline import evaluate

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChampionEvaluation:
    """The champion's metrics on the new version's held-out rows, or why there are none.

    `is_comparable` is False when the champion reads other inputs or cannot score these rows:
    the gate then rejects the new version. When it only failed to load, `metrics` is None but
    `is_comparable` stays True, and the gate decides on the minimums alone.
    """

    version: int
    metrics: dict[str, float] | None
    problem: str = ""
    is_comparable: bool = True


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict on one new version, with the comparison it was based on."""

    is_promoted: bool
    metric: str
    value: float
    reasons: tuple[str, ...]
    champion: ChampionEvaluation | None

    def describe(self) -> str:
        """Return the decision as one line, e.g. `gate: f1 0.87 vs champion ... -> promoted`."""
        line = f"gate: {self.metric} {self.value:.4f}"
        champion = self.champion
        if champion is None:
            line += ", no champion"
        elif champion.metrics is None:
            line += f" vs champion version {champion.version} ({champion.problem})"
        else:
            line += (
                f" vs champion version {champion.version} "
                f"{self.metric} {champion.metrics[self.metric]:.4f}"
            )
        if self.is_promoted:
            return line + " -> promoted"
        return line + " -> rejected: " + "; ".join(self.reasons)

    def tags(self) -> dict[str, str]:
        """Return the run tags that record the decision in MLflow."""
        champion = "" if self.champion is None else str(self.champion.version)
        return {
            "gate.decision": "promoted" if self.is_promoted else "rejected",
            "gate.reason": "; ".join(self.reasons) or "passed",
            "gate.metric": self.metric,
            "gate.champion_version": champion,
        }

    def champion_metrics(self) -> dict[str, float]:
        """Return the champion's metrics as `champion_<name>`, empty when there are none."""
        if self.champion is None or self.champion.metrics is None:
            return {}
        return {f"champion_{name}": value for name, value in self.champion.metrics.items()}


def evaluate_champion(
    name: str,
    version: int,
    signature: ModelSignature,
    x_test: pd.DataFrame,
    y_test: pd.Series,
    positive_label: str,
) -> ChampionEvaluation:
    """Load version `version` of the registered model `name` and evaluate it on `x_test`.

    MLflow must already point at the tracking store.
    """
    uri = f"models:/{name}/{version}"
    try:
        champion = mlflow.sklearn.load_model(uri)
        champion_signature = mlflow.models.get_model_info(uri).signature
    # A champion whose artifacts are gone or unreadable cannot be served after a worker restart
    # either. Blocking its replacement would keep the broken version, so the gate goes on with
    # the minimums alone.
    except Exception as exc:  # noqa: BLE001 - any load failure means there is nothing to compare
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        logger.warning("champion not loaded, gate uses minimums only uri=%s error=%s", uri, reason)
        return ChampionEvaluation(version, None, f"not loaded: {reason}")

    # A champion that reads other input columns serves other events. Moving the alias to this
    # version would make the workers dead-letter every event their producers send, so that
    # switch is left to an explicit `streamscore promote`.
    expected = _input_columns(champion_signature)
    actual = _input_columns(signature)
    if expected != actual:
        problem = f"inputs {_format_columns(expected)}, this version {_format_columns(actual)}"
        return ChampionEvaluation(version, None, problem, is_comparable=False)
    try:
        metrics = evaluate(champion, x_test, y_test, positive_label)
    except (ValueError, KeyError) as exc:
        problem = f"cannot score the held-out rows: {exc}"
        return ChampionEvaluation(version, None, problem, is_comparable=False)
    return ChampionEvaluation(version, metrics)


def decide(
    metrics: dict[str, float], training: TrainingSettings, champion: ChampionEvaluation | None
) -> GateDecision:
    """Apply the gate to a new version's held-out `metrics`. NaN never meets a threshold."""
    reasons = [
        f"{name} {metrics[name]:.4f} < min {minimum:.4f}"
        for name, minimum in training.min_metrics.items()
        if not metrics[name] >= minimum
    ]
    metric = training.gate_metric
    value = metrics[metric]
    if champion is not None and not champion.is_comparable:
        reasons.append(
            f"champion version {champion.version} is not comparable; "
            f"move the alias with `streamscore promote`"
        )
    elif champion is not None and champion.metrics is not None:
        champion_value = champion.metrics[metric]
        if value < champion_value or (math.isnan(value) and not math.isnan(champion_value)):
            reasons.append(f"{metric} {value:.4f} < champion {champion_value:.4f}")
    return GateDecision(not reasons, metric, value, tuple(reasons), champion)


def _input_columns(signature: ModelSignature | None) -> list[tuple[str, str]]:
    if signature is None or signature.inputs is None:
        return []
    return [(column["name"], column["type"]) for column in signature.inputs.to_dict()]


def _format_columns(columns: list[tuple[str, str]]) -> str:
    return "[" + ", ".join(f"{name} {type_name}" for name, type_name in columns) + "]"
