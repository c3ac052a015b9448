"""The worker against the real broker: results, dead letters, metrics."""

from __future__ import annotations

import urllib.request

import orjson
import pandas as pd
import pytest

from streamscore.events import encode_event
from tests.integration.helpers import produce, read_topic, running_worker, wait_for
from tests.tiny_model import tiny_pipeline, tiny_scorer

MESSAGES = [
    "free prize claim now",
    "lunch at the station",
    "urgent cash reward call",
    "milk on the way home",
]


def _events(count: int) -> list[tuple[bytes, bytes]]:
    events = []
    for index in range(count):
        event_id = f"event-{index}"
        value = encode_event(event_id, {"message": MESSAGES[index % len(MESSAGES)]})
        events.append((event_id.encode(), value))
    return events


def test_worker_scores_every_event_once(settings_factory) -> None:
    settings = settings_factory(worker={"batch_size": 50})
    events = _events(300)
    produce(settings, events)

    with running_worker(settings, tiny_scorer()):
        records = read_topic(settings, settings.topics.output, expected=300, settle_s=1.0)

    results = [orjson.loads(record.value) for record in records]
    ids = [result["event_id"] for result in results]
    assert len(ids) == 300
    assert set(ids) == {f"event-{index}" for index in range(300)}
    expected = tiny_pipeline().predict(pd.DataFrame({"message": MESSAGES}))
    by_message = dict(zip(MESSAGES, expected, strict=True))
    for result in results:
        index = int(result["event_id"].removeprefix("event-"))
        assert result["label"] == by_message[MESSAGES[index % len(MESSAGES)]]


def test_worker_result_carries_key_model_and_headers(settings_factory) -> None:
    settings = settings_factory()
    produce(settings, _events(1))

    with running_worker(settings, tiny_scorer()):
        [record] = read_topic(settings, settings.topics.output, expected=1)

    result = orjson.loads(record.value)
    assert record.key == b"event-0"
    assert result["model_name"] == "tiny"
    assert result["model_version"] == "1"
    assert 0.5 <= result["probability"] <= 1.0
    assert result["event_time"] is not None
    assert result["scored_at"] is not None
    assert record.headers["model.name"] == b"tiny"
    assert record.headers["model.version"] == b"1"


POISON = {
    "not_utf8": b"\xff\xfe{}",
    "invalid_json": b"{not json",
    "not_object": b"[1, 2]",
    "missing_field": orjson.dumps({"event_id": "x"}),
    "wrong_type": orjson.dumps({"event_id": "x", "message": 42}),
    "too_large": orjson.dumps({"event_id": "x", "message": "a" * 2_000}),
    "invalid_value": orjson.dumps({"event_id": "x", "event_time": "yesterday", "message": "hi"}),
}


def test_worker_dead_letters_poison_and_scores_the_rest(settings_factory) -> None:
    settings = settings_factory(worker={"max_event_bytes": 1_000})
    good = _events(20)
    poison = [(f"poison-{reason}".encode(), value) for reason, value in POISON.items()]
    # Poison sits between good events so that it shares their batches and partitions.
    produce(settings, good[:10] + poison + good[10:])

    with running_worker(settings, tiny_scorer(max_event_bytes=1_000)) as metrics:
        results = read_topic(settings, settings.topics.output, expected=20, settle_s=0.5)
        dead = read_topic(settings, settings.topics.dead_letter, expected=len(POISON))

    assert len(results) == 20
    assert len(dead) == len(POISON)
    by_key = {record.key: record for record in dead}
    for reason, value in POISON.items():
        record = by_key[f"poison-{reason}".encode()]
        assert record.headers["error.reason"] == reason.encode()
        if reason == "too_large":
            assert record.value == value[:1_000]
            assert record.headers["error.value_truncated_from_bytes"] == str(len(value)).encode()
        else:
            assert record.value == value
        assert record.headers["source.topic"] == settings.topics.input.encode()
        assert int(record.headers["source.offset"]) >= 0
        assert record.headers["error.message"]
    assert metrics.events_dead_lettered.labels("not_utf8")._value.get() == 1


def test_worker_scoring_error_dead_letters_one_event(settings_factory) -> None:
    class FailsOnBoom:
        """Wraps the tiny pipeline; raises for any batch that contains the message 'boom'."""

        def __init__(self) -> None:
            self._pipeline = tiny_pipeline()
            self.classes_ = self._pipeline.classes_

        def predict_proba(self, frame: pd.DataFrame):
            if (frame["message"] == "boom").any():
                raise ValueError("cannot score 'boom'")
            return self._pipeline.predict_proba(frame)

    settings = settings_factory(worker={"batch_size": 100})
    scorer = tiny_scorer()
    scorer.model = FailsOnBoom()
    events = _events(10) + [(b"boom", encode_event("boom", {"message": "boom"}))]
    produce(settings, events)

    with running_worker(settings, scorer):
        results = read_topic(settings, settings.topics.output, expected=10, settle_s=0.5)
        dead = read_topic(settings, settings.topics.dead_letter, expected=1)

    assert len(results) == 10
    assert [record.key for record in dead] == [b"boom"]
    assert dead[0].headers["error.reason"] == b"scoring_failed"
    assert b"cannot score" in dead[0].headers["error.message"]


def _sample(metrics_text: str, name: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_worker_metrics_endpoint_counts_what_was_processed(settings_factory) -> None:
    settings = settings_factory()
    produce(settings, _events(40) + [(b"bad", b"{not json")])

    with running_worker(settings, tiny_scorer()) as metrics:
        port = metrics.serve("127.0.0.1", 0)
        read_topic(settings, settings.topics.output, expected=40)
        wait_for(lambda: metrics.results_produced._value.get() == 40)
        wait_for(lambda: metrics.events_dead_lettered.labels("invalid_json")._value.get() == 1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()

    assert _sample(text, "streamscore_events_consumed_total") == 41
    assert _sample(text, "streamscore_results_produced_total") == 40
    assert 'streamscore_events_dead_lettered_total{reason="invalid_json"} 1.0' in text
    assert _sample(text, "streamscore_end_to_end_latency_seconds_count") == 40
    assert _sample(text, "streamscore_batch_size_events_sum") == 41
    assert 'streamscore_model_info{name="tiny",run_id="run-tiny",version="1"} 1.0' in text


@pytest.mark.parametrize("batch_size", [1, 7])
def test_worker_small_batches_score_every_event(settings_factory, batch_size: int) -> None:
    settings = settings_factory(worker={"batch_size": batch_size})
    produce(settings, _events(30))

    with running_worker(settings, tiny_scorer()):
        records = read_topic(settings, settings.topics.output, expected=30, settle_s=0.5)

    assert sorted(orjson.loads(r.value)["event_id"] for r in records) == sorted(
        f"event-{i}" for i in range(30)
    )


def test_worker_megabyte_event_dead_lettered_once(settings_factory) -> None:
    settings = settings_factory(worker={"batch_size": 100})
    huge = orjson.dumps({"event_id": "huge", "message": "a" * 900_000})
    produce(settings, [*_events(5), (b"huge", huge), *_events(10)[5:]])

    with running_worker(settings, tiny_scorer()) as metrics:
        results = read_topic(settings, settings.topics.output, expected=10, settle_s=2.0)
        dead = read_topic(settings, settings.topics.dead_letter, expected=1, settle_s=1.0)

    assert sorted(orjson.loads(r.value)["event_id"] for r in results) == sorted(
        f"event-{i}" for i in range(10)
    )
    assert [record.key for record in dead] == [b"huge"]
    assert len(dead[0].value) == 100_000
    assert metrics.delivery_failures.labels("dead_letter")._value.get() == 0
