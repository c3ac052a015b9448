"""The scorer: one registered model version, resolved from the MLflow registry, scoring batches."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from streamscore.errors import ModelLoadError
from streamscore.events import Event, InputContract

logger = logging.getLogger(__name__)

_ALIAS_URI = re.compile(r"models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)")
_VERSION_URI = re.compile(r"models:/(?P<name>[^/@]+)/(?P<version>[0-9]+)")


@dataclass(frozen=True, slots=True)
class Prediction:
    """The predicted label of one event and the probability the model gave it."""

    label: str
    probability: float


@dataclass
class ScoredBatch:
    """Predictions of a batch in event order; `None` where scoring that event failed."""

    predictions: list[Prediction | None]
    failures: dict[int, str]


@dataclass
class Scorer:
    """A loaded scikit-learn classifier with its registry identity and input contract.

    The model must offer `predict_proba` and `classes_`, as a fitted sklearn Pipeline does.
    """

    model: Any
    contract: InputContract
    name: str
    version: str
    run_id: str = ""

    def __post_init__(self) -> None:
        if not hasattr(self.model, "predict_proba"):
            raise ModelLoadError(f"models:/{self.name}/{self.version}", "it has no predict_proba")
        self._classes = np.asarray(self.model.classes_)

    @classmethod
    def from_registry(cls, uri: str, tracking_uri: str, max_event_bytes: int) -> Scorer:
        """Resolve `uri` to one exact version in the registry and load that version.

        Raises:
            ModelLoadError: the alias or version does not exist, or the model cannot be loaded.
        """
        import mlflow
        from mlflow.exceptions import MlflowException

        mlflow.set_tracking_uri(tracking_uri)
        name, version, run_id = _resolve(uri, tracking_uri)
        exact_uri = f"models:/{name}/{version}"
        try:
            model = mlflow.sklearn.load_model(exact_uri)
            signature = mlflow.models.get_model_info(exact_uri).signature
        except (MlflowException, OSError) as exc:
            raise ModelLoadError(exact_uri, str(exc).splitlines()[0]) from exc
        try:
            contract = InputContract.from_signature(signature, max_event_bytes)
        except Exception as exc:
            raise ModelLoadError(exact_uri, str(exc)) from exc
        logger.info("model loaded uri=%s name=%s version=%s run_id=%s", uri, name, version, run_id)
        return cls(model, contract, name, version, run_id)

    def score(self, events: list[Event]) -> ScoredBatch:
        """Score a batch with one `predict_proba` call.

        When the call raises, each event is scored alone so that only the events the model
        cannot handle fail; their error messages are in `failures`.
        """
        try:
            return ScoredBatch(self._predict(events), {})
        except Exception:  # noqa: BLE001 - any model error is isolated per event below
            logger.warning("batch scoring failed, scoring events one by one size=%d", len(events))
        predictions: list[Prediction | None] = []
        failures: dict[int, str] = {}
        for index, event in enumerate(events):
            try:
                predictions.extend(self._predict([event]))
            except Exception as exc:  # noqa: BLE001 - the event is dead-lettered with the reason
                predictions.append(None)
                failures[index] = f"{type(exc).__name__}: {exc}"
        return ScoredBatch(predictions, failures)

    def _predict(self, events: list[Event]) -> list[Prediction | None]:
        columns = {name: [event.features[name] for event in events] for name in self.contract.names}
        probabilities = self.model.predict_proba(pd.DataFrame(columns))
        best = probabilities.argmax(axis=1)
        labels = self._classes[best].tolist()
        chosen = probabilities[np.arange(len(events)), best].tolist()
        return [Prediction(str(label), float(p)) for label, p in zip(labels, chosen, strict=True)]


def _resolve(uri: str, tracking_uri: str) -> tuple[str, str, str]:
    """Return name, version and run id of the version `uri` points at."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri)
    by_alias = _ALIAS_URI.fullmatch(uri)
    by_version = _VERSION_URI.fullmatch(uri)
    try:
        if by_alias:
            found = client.get_model_version_by_alias(by_alias["name"], by_alias["alias"])
        elif by_version:
            found = client.get_model_version(by_version["name"], by_version["version"])
        else:
            raise ModelLoadError(uri, "expected models:/NAME@ALIAS or models:/NAME/VERSION")
    except MlflowException as exc:
        reason = str(exc).splitlines()[0]
        hint = (
            "; run `streamscore train` to register one"
            # The SQL store reports a missing alias as INVALID_PARAMETER_VALUE (MLflow 3.17).
            if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "alias" in reason
            else ""
        )
        raise ModelLoadError(uri, f"{reason} (registry {tracking_uri}){hint}") from exc
    return found.name, str(found.version), found.run_id or ""
