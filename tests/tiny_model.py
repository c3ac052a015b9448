"""A tiny text classifier shaped like the trained spam pipeline, fitted in milliseconds."""

from __future__ import annotations

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from stream.scorer import Scorer
from streamscore.events import Field, InputContract

TEXTS = [
    "win a free prize now",
    "free entry claim your cash prize",
    "urgent call now to claim reward",
    "are we still on for lunch",
    "see you at the station later",
    "can you pick up milk on the way home",
]
LABELS = ["spam", "spam", "spam", "ham", "ham", "ham"]


def tiny_pipeline() -> Pipeline:
    """Fit a message -> ham/spam pipeline on six sentences."""
    pipeline = Pipeline(
        [
            ("features", ColumnTransformer([("text", CountVectorizer(), "message")])),
            ("classifier", LogisticRegression()),
        ]
    )
    pipeline.fit(pd.DataFrame({"message": TEXTS}), LABELS)
    return pipeline


def tiny_scorer(max_event_bytes: int = 100_000) -> Scorer:
    """Wrap the tiny pipeline as version 1 of a model named `tiny`."""
    contract = InputContract((Field("message", "string"),), max_event_bytes)
    return Scorer(tiny_pipeline(), contract, "tiny", "1", "run-tiny")
