"""Helpers for training tests: small data sets and settings with a private MLflow store."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from streamscore.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
SMS_DATA = REPO_ROOT / "data" / "sms_spam_collection.tsv"
TABULAR_CONFIG = REPO_ROOT / "config" / "tabular.yaml"
TRANSACTIONS_DATA = REPO_ROOT / "data" / "transactions.csv"

# Rows of the SMS data to train on: enough for both labels in each split, few enough for a
# 10-tree forest to fit quickly.
TRAINING_ROWS = 1_000


def write_sms_subset(directory: Path) -> Path:
    """Write the first TRAINING_ROWS lines of the SMS data to `directory` and return the path."""
    lines = SMS_DATA.read_text(encoding="utf-8").splitlines(keepends=True)[:TRAINING_ROWS]
    path = directory / "sms.tsv"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def make_training_settings(directory: Path, **training: Any) -> Settings:
    """Build settings with a private SQLite store and state directory under `directory`."""
    values: dict[str, Any] = {
        "data_path": write_sms_subset(directory),
        "experiment": f"experiment-{uuid.uuid4().hex[:12]}",
        "registered_model": f"model-{uuid.uuid4().hex[:12]}",
        "n_estimators": 10,
        "min_metrics": {"f1": 0.0},
    }
    values.update(training)
    return Settings(
        state_dir=directory / "state",
        model={"tracking_uri": tracking_uri_in(directory)},
        training=values,
    )


def tracking_uri_in(directory: Path) -> str:
    """Return the URI of a SQLite MLflow store under `directory`."""
    return f"sqlite:///{directory / 'store' / 'mlflow.db'}"


def use_cli_environment(
    monkeypatch: pytest.MonkeyPatch, directory: Path, name: str | None = None
) -> str:
    """Point CLI commands at a private store under `directory`; return the registered model.

    The model is `name`, or a new uuid-named one.
    """
    name = name or f"model-{uuid.uuid4().hex[:12]}"
    monkeypatch.chdir(directory)
    monkeypatch.setenv("STREAMSCORE_STATE_DIR", str(directory / "state"))
    monkeypatch.setenv("STREAMSCORE_MODEL__TRACKING_URI", tracking_uri_in(directory))
    monkeypatch.setenv("STREAMSCORE_TRAINING__N_ESTIMATORS", "10")
    monkeypatch.setenv("STREAMSCORE_TRAINING__REGISTERED_MODEL", name)
    return name
