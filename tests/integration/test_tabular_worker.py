"""The worker serves the tabular model from config alone: the same code as for the spam model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import orjson
import pandas as pd

from stream.scorer import Scorer
from streamscore.events import encode_event
from streamscore.settings import Settings, load_settings
from tests.integration.helpers import produce, read_topic, running_worker
from tests.integration.trainer_helpers import TABULAR_CONFIG, TRANSACTIONS_DATA, tracking_uri_in
from trainer.train import train

FEATURES = ["amount", "hour", "country", "channel"]
PUBLISHED_ROWS = 12


def _payments() -> list[dict[str, Any]]:
    """Return payments as a JSON producer sends them, with an integer amount and a new country.

    Training saw only decimal amounts and never the country `ZZ`.
    """
    lines = TRANSACTIONS_DATA.with_suffix(".jsonl").read_text(encoding="utf-8").splitlines()
    rows = [{name: json.loads(line)[name] for name in FEATURES} for line in lines]
    payments = rows[:PUBLISHED_ROWS]
    payments.append({"amount": 2500, "hour": 3, "country": "NG", "channel": "web"})
    payments.append({"amount": 19.99, "hour": 14, "country": "ZZ", "channel": "pos"})
    return payments


def test_worker_scores_tabular_model_from_config(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    tracking_uri = tracking_uri_in(tmp_path)
    tabular = load_settings(
        TABULAR_CONFIG,
        state_dir=tmp_path / "state",
        model={"tracking_uri": tracking_uri},
        training={"data_path": TRANSACTIONS_DATA, "n_estimators": 10},
    )
    train(tabular)
    settings = settings_factory(model=tabular.model.model_dump())
    scorer = Scorer.from_registry(
        settings.model.uri, settings.model.tracking_uri, settings.worker.max_event_bytes
    )
    payments = _payments()
    events = [
        (f"pay-{index}".encode(), encode_event(f"pay-{index}", payment))
        for index, payment in enumerate(payments)
    ]
    wrong_type = encode_event("pay-bad", {**payments[0], "amount": "12.50"})

    with running_worker(settings, scorer):
        produce(settings, [*events, (b"pay-bad", wrong_type)])
        results = read_topic(settings, settings.topics.output, expected=len(events))
        dead_letters = read_topic(settings, settings.topics.dead_letter, expected=1)

    model = mlflow.sklearn.load_model(f"models:/{scorer.name}/{scorer.version}")
    expected = model.predict(pd.DataFrame(payments, columns=FEATURES)).tolist()
    labels = {}
    for record in results:
        assert record.value is not None
        value = orjson.loads(record.value)
        labels[value["event_id"]] = value["label"]
    assert scorer.contract.names == FEATURES
    assert [labels.get(f"pay-{index}") for index in range(len(payments))] == expected
    assert "fraud" in expected
    assert len(dead_letters) == 1
    assert dead_letters[0].key == b"pay-bad"
    assert dead_letters[0].headers["error.reason"] == b"wrong_type"
    assert (
        dead_letters[0].headers["error.message"] == b"expected a number for 'amount', got '12.50'"
    )
