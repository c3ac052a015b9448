"""The scorer: one registered model version, resolved from the MLflow registry, scoring batches."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from streamscore.baseline import BASELINE_ARTIFACT, BaselineError, DriftBaseline
from streamscore.errors import ModelLoadError, StreamscoreError
from streamscore.events import Event, InputContract, InvalidEventError, format_time

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
    """Predictions of a batch in event order; `None` where scoring that event failed.

    `probabilities` has one row per event and one column per class of `classes`. It is None
    when the batch had to be scored event by event.
    """

    predictions: list[Prediction | None]
    failures: dict[int, str]
    classes: list[str] = field(default_factory=list)
    probabilities: np.ndarray | None = None


@dataclass
class Scorer:
    """A loaded scikit-learn classifier with its registry identity and input contract.

    The model must offer `predict_proba` and `classes_`, as a fitted sklearn Pipeline does.
    `baseline` is the drift baseline its training run saved, None when the run has none.
    """

    model: Any
    contract: InputContract
    name: str
    version: str
    run_id: str = ""
    baseline: DriftBaseline | None = None

    def __post_init__(self) -> None:
        if not hasattr(self.model, "predict_proba"):
            raise ModelLoadError(f"models:/{self.name}/{self.version}", "it has no predict_proba")
        self._classes = np.asarray(self.model.classes_)

    @classmethod
    def from_registry(cls, uri: str, tracking_uri: str, max_event_bytes: int) -> Scorer:
        """Resolve `uri` to one exact version in the registry, load it and smoke-test it.

        Raises:
            ModelLoadError: the alias or version does not exist, the registry cannot be reached,
                the model cannot be loaded, or it fails on its own input example.
        """
        name, version, run_id = resolve(uri, tracking_uri)
        scorer = cls.load_version(name, version, run_id, tracking_uri, max_event_bytes)
        logger.info("model loaded uri=%s name=%s version=%s run_id=%s", uri, name, version, run_id)
        return scorer

    @classmethod
    def load_version(
        cls, name: str, version: str, run_id: str, tracking_uri: str, max_event_bytes: int
    ) -> Scorer:
        """Load one exact registered version and smoke-test it on its input example.

        Raises:
            ModelLoadError: the model cannot be loaded or fails on its own input example.
        """
        import mlflow
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
        from mlflow.models import Model

        exact_uri = f"models:/{name}/{version}"
        try:
            # Ask this registry for the artifact location instead of downloading `models:/`,
            # which MLflow would resolve through its process-wide registry URI.
            client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
            source = client.get_model_version_download_uri(name, version)
            local_path = mlflow.artifacts.download_artifacts(
                artifact_uri=source, tracking_uri=tracking_uri
            )
            model = mlflow.sklearn.load_model(local_path)
            metadata = Model.load(local_path)
            example = metadata.load_input_example(local_path)
        except (MlflowException, OSError) as exc:
            raise ModelLoadError(exact_uri, str(exc).splitlines()[0]) from exc
        try:
            contract = InputContract.from_signature(metadata.signature, max_event_bytes)
        except StreamscoreError as exc:
            raise ModelLoadError(exact_uri, str(exc)) from exc
        baseline = _load_baseline(client, run_id, exact_uri)
        scorer = cls(model, contract, name, version, run_id, baseline)
        scorer.smoke_test(example)
        return scorer

    def smoke_test(self, example: Any) -> None:
        """Score the model's own input example through the event contract.

        Raises:
            ModelLoadError: an example row violates the signature, or scoring it fails.
        """
        uri = f"models:/{self.name}/{self.version}"
        if example is None:
            logger.warning("model has no input example, smoke test skipped uri=%s", uri)
            return
        rows = pd.DataFrame(example).to_dict(orient="records")
        try:
            events = [
                self.contract.validate({"event_id": f"example-{i}", **row})
                for i, row in enumerate(rows)
            ]
        except InvalidEventError as exc:
            raise ModelLoadError(uri, f"its input example violates its signature: {exc}") from exc
        scored = self.score(events)
        if scored.failures:
            first = next(iter(scored.failures.values()))
            raise ModelLoadError(uri, f"it failed to score its own input example: {first}")

    def score(self, events: list[Event]) -> ScoredBatch:
        """Score a batch with one `predict_proba` call.

        When the call raises, each event is scored alone so that only the events the model
        cannot handle fail; their error messages are in `failures`.
        """
        try:
            probabilities = self._predict_proba(events)
        except Exception:  # noqa: BLE001 - any model error is isolated per event below
            logger.warning("batch scoring failed, scoring events one by one size=%d", len(events))
        else:
            return ScoredBatch(self._predictions(probabilities), {}, self.classes, probabilities)
        predictions: list[Prediction | None] = []
        failures: dict[int, str] = {}
        for index, event in enumerate(events):
            try:
                predictions.extend(self._predictions(self._predict_proba([event])))
            except Exception as exc:  # noqa: BLE001 - the event is dead-lettered with the reason
                predictions.append(None)
                failures[index] = f"{type(exc).__name__}: {exc}"
        return ScoredBatch(predictions, failures, self.classes)

    def result(
        self, event: Event, prediction: Prediction, scored_at: str | None = None
    ) -> dict[str, Any]:
        """Build the result document of one scored event, as the output topic carries it.

        `scored_at` defaults to now; the worker passes one time for its whole batch.
        """
        return {
            "event_id": event.event_id,
            "label": prediction.label,
            "probability": prediction.probability,
            "model_name": self.name,
            "model_version": self.version,
            "event_time": event.event_time,
            "scored_at": scored_at or format_time(),
        }

    @property
    def classes(self) -> list[str]:
        """Class labels, in the order of the columns of `predict_proba`."""
        return [str(label) for label in self._classes]

    def _predict_proba(self, events: list[Event]) -> np.ndarray:
        columns = {name: [event.features[name] for event in events] for name in self.contract.names}
        return np.asarray(self.model.predict_proba(pd.DataFrame(columns)))

    def _predictions(self, probabilities: np.ndarray) -> list[Prediction | None]:
        best = probabilities.argmax(axis=1)
        labels = self._classes[best].tolist()
        chosen = probabilities[np.arange(len(best)), best].tolist()
        return [Prediction(str(label), float(p)) for label, p in zip(labels, chosen, strict=True)]


def _load_baseline(client: Any, run_id: str, uri: str) -> DriftBaseline | None:
    """Download the drift baseline of the model's run; None, logged once, when there is none."""
    import tempfile

    import orjson
    from mlflow.exceptions import MlflowException

    if not run_id:
        logger.info("model has no run, feature drift not monitored uri=%s", uri)
        return None
    try:
        with tempfile.TemporaryDirectory() as directory:
            path = client.download_artifacts(run_id, BASELINE_ARTIFACT, directory)
            content = Path(path).read_bytes()
    except (MlflowException, OSError) as exc:
        logger.info(
            "model has no drift baseline, feature drift not monitored uri=%s error=%s",
            uri,
            str(exc).splitlines()[0],
        )
        return None
    try:
        return DriftBaseline.from_dict(orjson.loads(content))
    except (BaselineError, orjson.JSONDecodeError) as exc:
        logger.warning(
            "drift baseline invalid, feature drift not monitored uri=%s error=%s", uri, exc
        )
        return None


def resolve(uri: str, tracking_uri: str) -> tuple[str, str, str]:
    """Return name, version and run id of the version `uri` points at.

    Raises:
        ModelLoadError: the name, alias or version does not exist or the registry failed.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    _check_store_exists(uri, tracking_uri)
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


def _check_store_exists(uri: str, tracking_uri: str) -> None:
    """Reject a SQLite store file that does not exist, which MLflow would create empty."""
    if not tracking_uri.startswith("sqlite:///"):
        return
    path = Path(tracking_uri.removeprefix("sqlite:///"))
    if not path.is_file():
        raise ModelLoadError(
            uri,
            f"no MLflow store at {path}; run `streamscore train` in this directory first, "
            f"or set model.tracking_uri to the store that holds the model",
        )
