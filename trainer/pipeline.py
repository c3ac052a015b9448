"""The reference spam model: word counts of one text column fed to a random forest."""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.pipeline import Pipeline

from streamscore.settings import TrainingSettings


def build_pipeline(training: TrainingSettings) -> Pipeline:
    """Build an unfitted pipeline that predicts labels from `training.text_column` of a DataFrame.

    After fitting, `predict` returns label strings and the columns of `predict_proba` follow
    `classes_`. The worker scores events with exactly these two calls.
    """
    features = ColumnTransformer(
        [("text", CountVectorizer(max_features=training.max_features), training.text_column)]
    )
    # n_jobs keeps its default of one job because the saved forest reuses it in predict_proba,
    # and the worker should not start one thread per core for every batch it scores.
    classifier = RandomForestClassifier(
        n_estimators=training.n_estimators,
        max_depth=training.max_depth,
        random_state=training.random_state,
    )
    return Pipeline([("features", features), ("classifier", classifier)])
