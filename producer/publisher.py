"""Publish rows as events on the input topic, paced to a rate, and count the delivery reports."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import chain, islice
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from streamscore.errors import StreamscoreError
from streamscore.events import EVENT_ID, EVENT_TIME, encode_event, format_time, new_event_id
from streamscore.kafka import producer_config
from streamscore.settings import Settings

logger = logging.getLogger(__name__)

# Called once per event the broker acknowledged, with the event id and the row it came from.
OnPublished = Callable[[str, Mapping[str, Any]], None]
# An event ready to produce: its id (also the message key), its value, and the row it came from.
EncodedEvent = tuple[str, bytes, Mapping[str, Any]]

# How far ahead of its schedule the sender may run before it waits, in seconds. Waits shorter
# than this cost more in timer overhead than they add in pacing accuracy.
_MIN_WAIT_S = 0.001

# How long to serve delivery reports before producing again after the local queue was full.
_QUEUE_FULL_WAIT_S = 0.1

# Field names the event sets itself. A row field with one of these names is not copied, so the
# message key always equals the event's `event_id`.
_RESERVED_FIELDS = (EVENT_ID, EVENT_TIME)


@dataclass
class PublishReport:
    """Counts of one `publish` call: events delivered, events failed, and the time taken."""

    topic: str
    delivered: int = 0
    failed: int = 0
    elapsed_s: float = 0.0

    @property
    def sent(self) -> int:
        """Events handed to the producer: delivered plus failed."""
        return self.delivered + self.failed

    @property
    def events_per_s(self) -> float:
        """Delivered events per second of elapsed time."""
        return self.delivered / self.elapsed_s if self.elapsed_s > 0 else 0.0


def publish(
    settings: Settings,
    rows: Iterable[Mapping[str, Any]],
    *,
    fields: Sequence[str] | None = None,
    id_field: str | None = None,
    limit: int | None = None,
    rate: float | None = None,
    topic: str | None = None,
    on_published: OnPublished | None = None,
) -> PublishReport:
    """Produce one event per row and wait for every delivery report.

    Each event is built from its row: its id, the current time and the selected fields. Then
    `publish_encoded` produces the events.

    Args:
        settings: Kafka connection, input topic and flush timeout.
        rows: the rows to publish, e.g. from `producer.reader.read_rows`.
        fields: row fields to copy into each event (default: all of them).
        id_field: row field that contains the event id (default: a new random id per event).
        limit: publish at most this many rows.
        rate: events per second (default: as fast as the broker accepts them).
        topic: topic to publish to (default: `settings.topics.input`).
        on_published: called with (event_id, row) for each event the broker acknowledged.

    Returns:
        The counts. An event that has no delivery report when the flush times out counts as
        failed.

    Raises:
        StreamscoreError: a row lacks a selected field or the id field, or its id is empty.
            Events produced before that row are flushed first.
    """
    events = _encode_rows(rows, fields, id_field)
    return publish_encoded(
        settings, events, limit=limit, rate=rate, topic=topic, on_published=on_published
    )


def _encode_rows(
    rows: Iterable[Mapping[str, Any]], fields: Sequence[str] | None, id_field: str | None
) -> Iterator[EncodedEvent]:
    """Build each row's event lazily, so that its event_time is stamped just before it is sent."""
    for index, row in enumerate(rows):
        event_id = _event_id(row, id_field, index)
        yield event_id, encode_event(event_id, _select(row, fields, index), format_time()), row


def publish_encoded(
    settings: Settings,
    events: Iterable[EncodedEvent],
    *,
    limit: int | None = None,
    rate: float | None = None,
    topic: str | None = None,
    on_published: OnPublished | None = None,
) -> PublishReport:
    """Produce already encoded events, keyed by their ids, and wait for every delivery report.

    The value of an encoded event may be any bytes, also bytes that are not a valid event. The
    generated load of `publish --generate --invalid-fraction` uses that.

    1. Produce each event keyed by its id, waiting first when ahead of the `rate` schedule.
    2. Flush: wait up to `settings.worker.flush_timeout_s` for the remaining delivery reports.

    Args:
        settings: Kafka connection, input topic and flush timeout.
        events: (event id, value, row) triples; the row is passed on to `on_published`.
        limit: publish at most this many events.
        rate: events per second (default: as fast as the broker accepts them).
        topic: topic to publish to (default: `settings.topics.input`).
        on_published: called with (event_id, row) for each event the broker acknowledged.

    Returns:
        The counts. An event that has no delivery report when the flush times out counts as
        failed.

    Raises:
        StreamscoreError: building an event failed. Events produced before it are flushed first.
    """
    report = PublishReport(topic=topic or settings.topics.input)
    pending = iter(islice(events, limit))
    # Build the first event before connecting, so that an unreadable file fails before any
    # connection attempt.
    first = next(pending, None)
    if first is None:
        logger.info("publish finished delivered=0 failed=0 rows=0")
        return report

    producer = Producer(producer_config(settings.kafka, error_cb=_error_logger()))
    on_delivery = _delivery_counter(report, on_published)
    logger.info("publish started topic=%s limit=%s rate=%s", report.topic, limit, rate)
    start = time.monotonic()
    try:
        for index, (event_id, value, row) in enumerate(chain([first], pending)):
            # 1. Produce the event on schedule.
            if rate is not None:
                _wait_until(producer, start + index / rate)
            _produce(producer, report.topic, event_id, value, partial(on_delivery, event_id, row))
    finally:
        # 2. Flush, also after an error, so that the events already produced are not lost.
        _flush(producer, report, settings.worker.flush_timeout_s)
        report.elapsed_s = time.monotonic() - start
        logger.info(
            "publish finished delivered=%d failed=%d elapsed_s=%.2f",
            report.delivered,
            report.failed,
            report.elapsed_s,
        )
    return report


def _event_id(row: Mapping[str, Any], id_field: str | None, index: int) -> str:
    if id_field is None:
        return new_event_id()
    if id_field not in row:
        raise StreamscoreError(f"row {index + 1} has no id field {id_field!r}")
    event_id = str(row[id_field])
    if not event_id:
        raise StreamscoreError(f"row {index + 1} has an empty id in field {id_field!r}")
    return event_id


def _select(row: Mapping[str, Any], fields: Sequence[str] | None, index: int) -> dict[str, Any]:
    names = fields if fields is not None else list(row)
    selected = {}
    for name in names:
        if name in _RESERVED_FIELDS:
            continue
        if name not in row:
            raise StreamscoreError(f"row {index + 1} has no field {name!r}")
        selected[name] = row[name]
    return selected


def _wait_until(producer: Producer, due: float) -> None:
    """Serve delivery reports until the monotonic clock reaches `due`."""
    remaining = due - time.monotonic()
    while remaining >= _MIN_WAIT_S:
        producer.poll(remaining)
        remaining = due - time.monotonic()


def _produce(
    producer: Producer,
    topic: str,
    event_id: str,
    value: bytes,
    on_delivery: Callable[[KafkaError | None, Message], None],
) -> None:
    key = event_id.encode("utf-8")
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
        except BufferError:
            # The local queue is full: serve delivery reports to free room, then retry.
            producer.poll(_QUEUE_FULL_WAIT_S)
            continue
        producer.poll(0)
        return


def _delivery_counter(
    report: PublishReport, on_published: OnPublished | None
) -> Callable[[str, Mapping[str, Any], KafkaError | None, Message], None]:
    """Build the delivery report handler: count each outcome, log the first failure only."""

    def on_delivery(
        event_id: str, row: Mapping[str, Any], error: KafkaError | None, message: Message
    ) -> None:
        if error is not None:
            report.failed += 1
            if report.failed == 1:
                logger.warning(
                    "delivery failed topic=%s event_id=%s error=%s "
                    "(later failures are counted, not logged)",
                    report.topic,
                    event_id,
                    error.str(),
                )
            return
        report.delivered += 1
        if on_published is not None:
            on_published(event_id, row)

    return on_delivery


def _flush(producer: Producer, report: PublishReport, timeout_s: float) -> None:
    remaining = producer.flush(timeout_s)
    if remaining:
        # These events may still reach the broker, but their delivery reports are never served.
        producer.purge()
        report.failed += remaining
        logger.warning(
            "flush timed out topic=%s undelivered=%d timeout_s=%g",
            report.topic,
            remaining,
            timeout_s,
        )


def _error_logger() -> Callable[[KafkaError], None]:
    """Build the client error handler, which logs each error code once.

    librdkafka repeats some errors, such as an unreachable broker, every few seconds.
    """
    seen: set[int] = set()

    def on_error(error: KafkaError) -> None:
        if error.fatal():
            logger.error("producer fatal error error=%s", error.str())
        elif error.code() not in seen:
            seen.add(error.code())
            logger.warning("producer error error=%s", error.str())

    return on_error
