"""The reference spam pipeline and its evaluation on a tiny in-memory dataset."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from streamscore.settings import TrainingSettings
from trainer.pipeline import build_pipeline, evaluate

MESSAGES = [
    ("spam", "WIN a free prize now, call today"),
    ("spam", "free cash prize, text WIN now"),
    ("spam", "claim your free prize, call now"),
    ("ham", "see you at lunch tomorrow"),
    ("ham", "are we still on for dinner"),
    ("ham", "running late, see you soon"),
]


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(MESSAGES, columns=["label", "message"])


def test_pipeline_predicts_label_strings(frame: pd.DataFrame) -> None:
    pipeline = build_pipeline(TrainingSettings(n_estimators=5))

    pipeline.fit(frame[["message"]], frame["label"])

    assert list(pipeline.classes_) == ["ham", "spam"]
    assert set(pipeline.predict(frame[["message"]])) <= {"ham", "spam"}


def test_pipeline_proba_columns_follow_classes(frame: pd.DataFrame) -> None:
    pipeline = build_pipeline(TrainingSettings(n_estimators=5))
    pipeline.fit(frame[["message"]], frame["label"])
    unseen = pd.DataFrame({"message": ["free prize, call now", "see you at dinner"]})

    probabilities = pipeline.predict_proba(unseen)

    spam = list(pipeline.classes_).index("spam")
    assert probabilities.shape == (2, 2)
    assert probabilities[0, spam] > probabilities[1, spam]
    assert probabilities.sum(axis=1) == pytest.approx([1.0, 1.0])


def test_pipeline_reads_named_text_column(frame: pd.DataFrame) -> None:
    renamed = frame.rename(columns={"message": "body"})
    pipeline = build_pipeline(TrainingSettings(text_column="body", n_estimators=5))

    pipeline.fit(renamed[["body"]].assign(other="ignored"), renamed["label"])

    assert pipeline.predict(pd.DataFrame({"body": ["free prize"]})).shape == (1,)


def test_pipeline_parameters_follow_settings() -> None:
    training = TrainingSettings(max_features=7, n_estimators=3, max_depth=4, random_state=5)

    pipeline = build_pipeline(training)

    params = pipeline.get_params()
    assert params["features__text__max_features"] == 7
    assert params["classifier__n_estimators"] == 3
    assert params["classifier__max_depth"] == 4
    assert params["classifier__random_state"] == 5
    assert params["classifier__n_jobs"] is None


def test_evaluate_perfect_split_scores_one(frame: pd.DataFrame) -> None:
    pipeline = build_pipeline(TrainingSettings(n_estimators=5))
    pipeline.fit(frame[["message"]], frame["label"])

    metrics = evaluate(pipeline, frame[["message"]], frame["label"], "spam")

    assert set(metrics) == {"precision", "recall", "f1", "accuracy", "roc_auc"}
    assert metrics["f1"] == pytest.approx(1.0)
    assert metrics["accuracy"] == pytest.approx(1.0)
    assert metrics["roc_auc"] == pytest.approx(1.0)


def test_evaluate_one_sided_rows_roc_auc_nan(frame: pd.DataFrame) -> None:
    pipeline = build_pipeline(TrainingSettings(n_estimators=5))
    pipeline.fit(frame[["message"]], frame["label"])
    ham = frame[frame["label"] == "ham"]

    metrics = evaluate(pipeline, ham[["message"]], ham["label"], "spam")

    assert math.isnan(metrics["roc_auc"])
    assert metrics["precision"] == 0.0


PAYMENTS = pd.DataFrame(
    {
        "amount": [12.5, 900.0, 30.0, 1500.0, 8.0, 2200.0],
        "hour": [14.0, 3.0, 11.0, 2.0, 18.0, 4.0],
        "country": ["DE", "NG", "FR", "NG", "GB", "BR"],
        "label": ["ok", "fraud", "ok", "fraud", "ok", "fraud"],
    }
)


def _tabular_settings() -> TrainingSettings:
    return TrainingSettings(
        pipeline="tabular",
        numeric_columns=["amount", "hour"],
        categorical_columns=["country"],
        n_estimators=5,
    )


def test_tabular_pipeline_predicts_labels() -> None:
    features = PAYMENTS[["amount", "hour", "country"]]
    pipeline = build_pipeline(_tabular_settings())

    pipeline.fit(features, PAYMENTS["label"])

    assert list(pipeline.classes_) == ["fraud", "ok"]
    assert pipeline.predict(features).tolist() == PAYMENTS["label"].tolist()


def test_tabular_pipeline_accepts_unseen_category_and_ints() -> None:
    pipeline = build_pipeline(_tabular_settings())
    pipeline.fit(PAYMENTS[["amount", "hour", "country"]], PAYMENTS["label"])
    unseen = pd.DataFrame({"amount": [2000], "hour": [3], "country": ["ZZ"]})

    probabilities = pipeline.predict_proba(unseen)

    assert probabilities.shape == (1, 2)
