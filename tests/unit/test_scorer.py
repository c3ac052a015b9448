"""The scorer on a tiny model: one predict_proba call per batch, failures isolated per event."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stream.scorer import Prediction, Scorer
from streamscore.errors import ModelLoadError
from streamscore.events import Event, Field, InputContract
from tests.tiny_model import TEXTS, tiny_pipeline, tiny_scorer


def _events(messages: list[str]) -> list[Event]:
    return [Event(f"e{i}", None, None, {"message": m}) for i, m in enumerate(messages)]


def test_scorer_matches_pipeline_predictions() -> None:
    scorer = tiny_scorer()
    pipeline = tiny_pipeline()

    scored = scorer.score(_events(TEXTS))

    frame = pd.DataFrame({"message": TEXTS})
    expected_labels = pipeline.predict(frame).tolist()
    expected_probabilities = pipeline.predict_proba(frame).max(axis=1)
    assert scored.failures == {}
    assert [p.label for p in scored.predictions if p] == expected_labels
    assert np.allclose([p.probability for p in scored.predictions if p], expected_probabilities)


def test_scorer_calls_predict_proba_once_per_batch() -> None:
    calls: list[int] = []
    scorer = tiny_scorer()
    pipeline = scorer.model

    class Counting:
        classes_ = pipeline.classes_

        def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
            calls.append(len(frame))
            return pipeline.predict_proba(frame)

    scorer.model = Counting()

    scorer.score(_events(TEXTS * 10))

    assert calls == [len(TEXTS) * 10]


def test_scorer_failing_event_isolated() -> None:
    scorer = tiny_scorer()
    pipeline = scorer.model

    class FailsOnEmpty:
        classes_ = pipeline.classes_

        def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
            if (frame["message"] == "").any():
                raise ValueError("empty message")
            return pipeline.predict_proba(frame)

    scorer.model = FailsOnEmpty()

    scored = scorer.score(_events(["free prize", "", "lunch later"]))

    assert scored.predictions[0] is not None
    assert scored.predictions[1] is None
    assert scored.predictions[2] is not None
    assert scored.failures == {1: "ValueError: empty message"}


def test_scorer_model_without_predict_proba_rejected() -> None:
    contract = InputContract((Field("message", "string"),))

    with pytest.raises(ModelLoadError, match="models:/plain/2.*no predict_proba"):
        Scorer(object(), contract, "plain", "2")


def test_prediction_is_plain_python_types() -> None:
    [prediction] = tiny_scorer().score(_events(["free prize"])).predictions

    assert isinstance(prediction, Prediction)
    assert type(prediction.label) is str
    assert type(prediction.probability) is float
