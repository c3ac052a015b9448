"""The worker follows the registry: alias resolution, hot reload, failed reloads, shadow model."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import orjson
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.pipeline import Pipeline

from stream.metrics import WorkerMetrics
from stream.reload import ModelWatcher
from stream.scorer import Scorer
from stream.worker import Worker
from streamscore.broker import free_port
from streamscore.errors import ModelLoadError
from streamscore.events import encode_event
from tests.integration.helpers import produce, read_topic, wait_for
from tests.integration.registry import move_alias, register
from tests.tiny_model import LABELS, TEXTS


def _always_spam() -> Pipeline:
    """Fit a model that predicts 'spam' for every message, so a switch shows in the results."""
    pipeline = Pipeline(
        [
            ("features", ColumnTransformer([("text", CountVectorizer(), "message")])),
            ("classifier", DummyClassifier(strategy="constant", constant="spam")),
        ]
    )
    return pipeline.fit(pd.DataFrame({"message": TEXTS}), LABELS)


def _wrong_column() -> Pipeline:
    """Fit a model on a column named `text` while its signature promises `message`."""
    pipeline = Pipeline(
        [
            ("features", ColumnTransformer([("text", CountVectorizer(), "text")])),
            ("classifier", DummyClassifier()),
        ]
    )
    return pipeline.fit(pd.DataFrame({"text": TEXTS}), LABELS)


@pytest.fixture
def model_name() -> str:
    return f"model-{uuid.uuid4().hex[:8]}"


def test_scorer_alias_resolves_to_exact_version(
    tracking_uri: str, artifact_dir: Path, model_name: str
) -> None:
    register(tracking_uri, model_name, artifact_dir)
    register(tracking_uri, model_name, artifact_dir, alias=None)

    scorer = Scorer.from_registry(f"models:/{model_name}@champion", tracking_uri, 1_000)
    fixed = Scorer.from_registry(f"models:/{model_name}/2", tracking_uri, 1_000)

    assert scorer.version == "1"
    assert fixed.version == "2"
    assert scorer.run_id


def test_scorer_missing_alias_fails_with_hint(
    tracking_uri: str, artifact_dir: Path, model_name: str
) -> None:
    register(tracking_uri, model_name, artifact_dir, alias=None)

    with pytest.raises(ModelLoadError, match=rf"models:/{model_name}@champion: .*alias"):
        Scorer.from_registry(f"models:/{model_name}@champion", tracking_uri, 1_000)


def test_scorer_failed_smoke_test_stops_loading(
    tracking_uri: str, artifact_dir: Path, model_name: str
) -> None:
    register(tracking_uri, model_name, artifact_dir, pipeline=_wrong_column())

    with pytest.raises(ModelLoadError, match="failed to score its own input example"):
        Scorer.from_registry(f"models:/{model_name}@champion", tracking_uri, 1_000)


def test_scorer_unreachable_registry_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    registry = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(
        ModelLoadError, match=f"cannot load model models:/any@champion: .*{registry}"
    ):
        Scorer.from_registry("models:/any@champion", registry, 1_000)


class _FollowingWorker:
    """A worker in a thread that follows the alias, checking every 0.3 s."""

    def __init__(self, settings, tracking_uri: str, uri: str, shadow_uri: str | None = None):
        self.metrics = WorkerMetrics(CollectorRegistry())
        scorer = Scorer.from_registry(uri, tracking_uri, 1_000)
        watcher = ModelWatcher(
            uri,
            tracking_uri,
            1_000,
            scorer.version,
            0.3,
            on_load=lambda outcome: self.metrics.model_reloads.labels(outcome).inc(),
        )
        shadow = None
        if shadow_uri is not None:
            shadow = ModelWatcher(shadow_uri, tracking_uri, 1_000, "", 0.3, lambda _: None)
            shadow.check_once()
        self.worker = Worker(settings, scorer, self.metrics, watcher, shadow)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self) -> _FollowingWorker:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.worker.request_stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


def _publish_steadily(settings, stop: threading.Event, sent: list[str]) -> None:
    index = 0
    while not stop.is_set():
        batch = []
        for _ in range(20):
            event_id = f"steady-{index}"
            batch.append((event_id.encode(), encode_event(event_id, {"message": TEXTS[index % 6]})))
            sent.append(event_id)
            index += 1
        produce(settings, batch)
        time.sleep(0.05)


def test_worker_hot_reload_switches_between_batches(
    settings_factory, tracking_uri: str, artifact_dir: Path, model_name: str
) -> None:
    settings = settings_factory(worker={"batch_size": 50})
    register(tracking_uri, model_name, artifact_dir)
    spam_version = register(tracking_uri, model_name, artifact_dir, _always_spam(), alias=None)
    stop, sent = threading.Event(), []
    publisher = threading.Thread(target=_publish_steadily, args=(settings, stop, sent))

    with _FollowingWorker(settings, tracking_uri, f"models:/{model_name}@champion") as running:
        publisher.start()
        wait_for(lambda: running.metrics.results_produced._value.get() > 100)
        move_alias(tracking_uri, model_name, spam_version)
        wait_for(lambda: running.metrics.model_reloads.labels("success")._value.get() == 1)
        time.sleep(1.0)
        stop.set()
        publisher.join()
        records = read_topic(settings, settings.topics.output, expected=len(sent), settle_s=1.0)

    results = [orjson.loads(record.value) for record in records]
    ids = [result["event_id"] for result in results]
    assert len(ids) == len(sent)
    assert set(ids) == set(sent)
    versions_by_partition: dict[int, list[str]] = defaultdict(list)
    for record, result in zip(records, results, strict=True):
        versions_by_partition[record.partition].append(result["model_version"])
        assert record.headers["model.version"] == result["model_version"].encode()
    for versions in versions_by_partition.values():
        switch = versions.index(spam_version) if spam_version in versions else len(versions)
        assert set(versions[:switch]) == {"1"}
        assert set(versions[switch:]) <= {spam_version}
    after_switch = [r for r in results if r["model_version"] == spam_version]
    assert after_switch
    assert {r["label"] for r in after_switch} == {"spam"}


def test_worker_failed_reload_keeps_serving(
    settings_factory, tracking_uri: str, artifact_dir: Path, model_name: str
) -> None:
    settings = settings_factory()
    register(tracking_uri, model_name, artifact_dir)
    broken = register(tracking_uri, model_name, artifact_dir, _wrong_column(), alias=None)
    first = [(f"a-{i}".encode(), encode_event(f"a-{i}", {"message": TEXTS[i]})) for i in range(6)]
    later = [(f"b-{i}".encode(), encode_event(f"b-{i}", {"message": TEXTS[i]})) for i in range(6)]

    with _FollowingWorker(settings, tracking_uri, f"models:/{model_name}@champion") as running:
        produce(settings, first)
        read_topic(settings, settings.topics.output, expected=6)
        move_alias(tracking_uri, model_name, broken)
        wait_for(lambda: running.metrics.model_reloads.labels("failed")._value.get() >= 1)
        produce(settings, later)
        records = read_topic(settings, settings.topics.output, expected=12, settle_s=0.5)

    versions = {orjson.loads(record.value)["model_version"] for record in records}
    assert len(records) == 12
    assert versions == {"1"}
    assert running.metrics.model_reloads.labels("success")._value.get() == 0


def test_worker_unreachable_registry_keeps_serving(
    settings_factory, tracking_uri: str, artifact_dir: Path, model_name: str, monkeypatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    settings = settings_factory()
    register(tracking_uri, model_name, artifact_dir)
    scorer = Scorer.from_registry(f"models:/{model_name}@champion", tracking_uri, 1_000)
    # The registry "goes away": the watcher now sends requests to an address where nothing listens.
    down = f"http://127.0.0.1:{free_port()}"
    metrics = WorkerMetrics(CollectorRegistry())
    watcher = ModelWatcher(f"models:/{model_name}@champion", down, 1_000, "1", 0.2, lambda _: None)
    worker = Worker(settings, scorer, metrics, watcher)
    thread = threading.Thread(target=worker.run, daemon=True)
    events = [(f"c-{i}".encode(), encode_event(f"c-{i}", {"message": TEXTS[i]})) for i in range(6)]

    thread.start()
    try:
        time.sleep(1.0)
        produce(settings, events)
        records = read_topic(settings, settings.topics.output, expected=6)
    finally:
        worker.request_stop()
        thread.join(timeout=60)

    assert len(records) == 6
    assert {orjson.loads(r.value)["model_version"] for r in records} == {"1"}


def test_worker_shadow_model_compared_not_published(
    settings_factory, tracking_uri: str, artifact_dir: Path, model_name: str
) -> None:
    settings = settings_factory()
    register(tracking_uri, model_name, artifact_dir)
    challenger = register(tracking_uri, model_name, artifact_dir, _always_spam(), alias=None)
    move_alias(tracking_uri, model_name, challenger, alias="challenger")
    events = [(f"d-{i}".encode(), encode_event(f"d-{i}", {"message": TEXTS[i]})) for i in range(6)]

    uri, shadow_uri = f"models:/{model_name}@champion", f"models:/{model_name}@challenger"
    with _FollowingWorker(settings, tracking_uri, uri, shadow_uri) as running:
        produce(settings, events)
        records = read_topic(settings, settings.topics.output, expected=6, settle_s=0.5)
        metrics = running.metrics
        wait_for(lambda: metrics.shadow_predictions.labels("agree")._value.get() > 0)

    served = [orjson.loads(record.value) for record in records]
    agree = metrics.shadow_predictions.labels("agree")._value.get()
    disagree = metrics.shadow_predictions.labels("disagree")._value.get()
    expected_agree = sum(1 for result in served if result["label"] == "spam")
    assert len(served) == 6
    assert {result["model_version"] for result in served} == {"1"}
    assert agree == expected_agree
    assert disagree == 6 - expected_agree
    assert metrics.shadow_probability_difference._sum.get() > 0
