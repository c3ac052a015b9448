"""The runs that are not the worker itself, each started as `python -m bench.runs NAME ...`.

Each run is its own process so that the bench can read its peak RSS. A run prints one JSON
object on its last stdout line; Kafka runs stop after `--events` events.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import joblib
import orjson
import pandas as pd
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from bench.context import MODEL_FILE_NAME, repeated_messages
from streamscore.kafka import consumer_config, producer_config
from streamscore.settings import Settings, load_settings


def model_ceiling(settings: Settings, events: int) -> dict[str, Any]:
    """Time `predict_proba` alone on in-memory batches of the worker's batch size."""
    model = joblib.load(settings.state_dir / MODEL_FILE_NAME)
    size = settings.worker.batch_size
    messages = [message for _, message in repeated_messages(events)]
    frames = [pd.DataFrame({"message": messages[i : i + size]}) for i in range(0, events, size)]
    model.predict_proba(frames[0])

    started = time.perf_counter()
    for frame in frames:
        model.predict_proba(frame)
    elapsed_s = time.perf_counter() - started

    return {"events_per_s": events / elapsed_s, "batch_size": size}


def kafka_ceiling(settings: Settings, events: int) -> dict[str, Any]:
    """Pass events through with no model, with the worker's at-least-once loop.

    Poll the first event and take those already fetched. Decode each, encode a result and
    produce it. Then wait for the previous batch's delivery reports and store its offsets,
    which auto-commit commits. This is the worker's contract and its overlap of delivery with
    the next batch, without the scoring.
    """
    consumer = Consumer(consumer_config(settings.kafka, settings.worker.group_id))
    producer = Producer(producer_config(settings.kafka))
    consumer.subscribe([settings.topics.input])
    output = settings.topics.output
    limit = settings.worker.batch_size
    pending = [0]

    def on_delivery(error: KafkaError | None, _: Message) -> None:
        pending[0] -= 1

    in_flight: dict[tuple[str, int], int] = {}
    handled = 0
    while handled < events:
        messages = consumer.consume(1, settings.worker.batch_wait_ms / 1000)
        if messages:
            messages += consumer.consume(limit - 1, 0)
        results: list[tuple[bytes | None, bytes]] = []
        next_offsets: dict[tuple[str, int], int] = {}
        for message in messages:
            if message.error() is not None:
                continue
            event = orjson.loads(cast(bytes, message.value()))
            result = {
                "event_id": event["event_id"],
                "label": "ham",
                "probability": 1.0,
                "event_time": event["event_time"],
            }
            results.append((message.key(), orjson.dumps(result)))
            position = cast(tuple[str, int], (message.topic(), message.partition()))
            next_offsets[position] = cast(int, message.offset()) + 1
        while pending[0] > 0:
            producer.poll(0.1)
        _store(consumer, in_flight)
        for key, value in results:
            pending[0] += 1
            _produce(producer, output, key, value, on_delivery)
        producer.poll(0)
        in_flight = next_offsets
        handled += len(results)
    producer.flush(30)
    _store(consumer, in_flight)
    consumer.close()
    return {"handled": handled}


def _store(consumer: Consumer, next_offsets: dict[tuple[str, int], int]) -> None:
    if next_offsets:
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
        consumer.store_offsets(offsets=offsets)


def naive_loop(settings: Settings, events: int) -> dict[str, Any]:
    """Poll one event, predict one row, produce its result, flush, commit: the textbook loop."""
    model = joblib.load(settings.state_dir / MODEL_FILE_NAME)
    config = consumer_config(settings.kafka, settings.worker.group_id)
    config.update({"enable.auto.commit": False, "enable.auto.offset.store": True})
    consumer = Consumer(config)
    producer = Producer(producer_config(settings.kafka))
    consumer.subscribe([settings.topics.input])
    handled = 0
    while handled < events:
        message = consumer.poll(1.0)
        if message is None or message.error() is not None:
            continue
        event = orjson.loads(cast(bytes, message.value()))
        probabilities = model.predict_proba(pd.DataFrame({"message": [event["message"]]}))[0]
        best = int(probabilities.argmax())
        result = {
            "event_id": event["event_id"],
            "label": str(model.classes_[best]),
            "probability": float(probabilities[best]),
            "event_time": event["event_time"],
        }
        _produce(producer, settings.topics.output, message.key(), orjson.dumps(result))
        producer.flush(30)
        consumer.commit(message=message, asynchronous=False)
        handled += 1
    consumer.close()
    return {"handled": handled}


def _produce(
    producer: Producer,
    topic: str,
    key: bytes | None,
    value: bytes,
    on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
) -> None:
    while True:
        try:
            producer.produce(topic, value, key, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.05)


RUNS = {"model_ceiling": model_ceiling, "kafka_ceiling": kafka_ceiling, "naive_loop": naive_loop}


def main(argv: list[str] | None = None) -> int:
    """Run one named run and print its JSON summary."""
    parser = argparse.ArgumentParser(prog="python -m bench.runs")
    parser.add_argument("run", choices=sorted(RUNS))
    parser.add_argument("--config", type=Path, required=True, help="streamscore settings file")
    parser.add_argument("--events", type=int, required=True, help="events to handle")
    args = parser.parse_args(argv)
    summary = RUNS[args.run](load_settings(args.config), args.events)
    sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
