"""Build the text or tabular pipeline (features, then a random forest) and compute its metrics."""

from __future__ import annotations

import logging
import math

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from streamscore.settings import TrainingSettings

logger = logging.getLogger(__name__)


def build_pipeline(training: TrainingSettings) -> Pipeline:
    """Build an unfitted pipeline that predicts labels from `training.feature_columns`.

    After fitting, `predict` returns label strings and the columns of `predict_proba` follow
    `classes_`. The worker scores events with exactly these two calls.
    """
    if training.pipeline == "text":
        text = CountVectorizer(max_features=training.max_features)
        features = ColumnTransformer([("text", text, training.text_column)])
    else:
        features = ColumnTransformer(
            [
                ("numeric", StandardScaler(), training.numeric_columns),
                # Categories first seen in an event, such as a new country, encode as all zeros
                # instead of failing the prediction.
                (
                    "categorical",
                    OneHotEncoder(handle_unknown="ignore"),
                    training.categorical_columns,
                ),
            ]
        )
    # n_jobs keeps its default of one job because the saved forest reuses it in predict_proba,
    # and the worker should not start one thread per core for every batch it scores.
    classifier = RandomForestClassifier(
        n_estimators=training.n_estimators,
        max_depth=training.max_depth,
        random_state=training.random_state,
    )
    return Pipeline([("features", features), ("classifier", classifier)])


def evaluate(
    pipeline: Pipeline, x_test: pd.DataFrame, y_test: pd.Series, positive_label: str
) -> dict[str, float]:
    """Compute precision, recall, f1, accuracy and ROC AUC of a fitted pipeline on held-out rows.

    Precision, recall, f1 and ROC AUC score `positive_label` against all other labels, so they
    stay defined when the data has more than two labels. ROC AUC is NaN when the held-out rows
    contain only one of the two sides.
    """
    predicted = pipeline.predict(x_test)
    is_positive = (y_test == positive_label).to_numpy()
    is_predicted_positive = predicted == positive_label
    positive_column = list(pipeline.classes_).index(positive_label)
    positive_score = pipeline.predict_proba(x_test)[:, positive_column]

    metrics = {
        "precision": precision_score(is_positive, is_predicted_positive, zero_division=0),
        "recall": recall_score(is_positive, is_predicted_positive, zero_division=0),
        "f1": f1_score(is_positive, is_predicted_positive, zero_division=0),
        "accuracy": accuracy_score(y_test, predicted),
        "roc_auc": math.nan,
    }
    if is_positive.any() and not is_positive.all():
        metrics["roc_auc"] = roc_auc_score(is_positive, positive_score)
    else:
        logger.warning(
            "roc_auc undefined, held-out rows are all on one side positive_label=%s rows=%d",
            positive_label,
            len(y_test),
        )
    return {name: float(value) for name, value in metrics.items()}
