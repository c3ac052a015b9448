"""Read results from the output topic, and the `streamscore results` command that prints them.

The reader assigns every partition of the topic itself and never joins a consumer group or
commits, so reading results does not disturb the worker or other readers.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaException,
    Message,
    TopicPartition,
)

from streamscore.errors import StreamscoreError
from streamscore.kafka import reader_config
from streamscore.settings import Settings

if TYPE_CHECKING:
    from streamscore.cli import CliContext

logger = logging.getLogger(__name__)

# Keys every result carries. A message without them is reported as invalid.
_REQUIRED_KEYS = ("event_id", "label")

# How long one consume call waits, in seconds. It bounds how late Ctrl-C is noticed.
_CONSUME_TIMEOUT_S = 0.5
# Messages one consume call returns at most.
_CONSUME_BATCH = 500


@dataclass(frozen=True, slots=True)
class ResultMessage:
    """One message of the output topic: where it is, its raw value, and the decoded result.

    `result` is None when the value is not a valid result, and `error` then gives the reason.
    """

    partition: int
    offset: int
    value: bytes | None
    result: dict[str, Any] | None
    error: str | None = None


def read_results(
    settings: Settings,
    *,
    topic: str | None = None,
    from_beginning: bool = True,
    follow: bool = False,
    limit: int | None = None,
    timeout_s: float = 10.0,
) -> Iterator[ResultMessage]:
    """Yield the messages of the output topic, decoded, across all of its partitions.

    Args:
        settings: Kafka connection and the output topic.
        topic: topic to read (default: `settings.topics.output`).
        from_beginning: start at the first message, else at the end.
        follow: keep waiting for new messages. Otherwise stop once every partition reached the
            end offset it had when reading began.
        limit: stop after this many messages.
        timeout_s: how long to wait for the topic's metadata, and, unless following, for the
            next message before stopping short of the end offsets.

    Raises:
        StreamscoreError: the metadata request timed out or the topic does not exist.
    """
    topic = topic or settings.topics.output
    consumer = Consumer(reader_config(settings.kafka))
    try:
        watermarks = _assign_all(consumer, topic, from_beginning, timeout_s)
        # The end offset of each partition that has messages to read before stopping.
        end_offsets = {
            partition: high
            for partition, (low, high) in watermarks.items()
            if high > low and from_beginning and not follow
        }
        unfinished = set(end_offsets)
        count = 0
        last_message_at = time.monotonic()
        while (follow or unfinished) and (limit is None or count < limit):
            messages = consumer.consume(_CONSUME_BATCH, _CONSUME_TIMEOUT_S)
            for message in messages[: None if limit is None else limit - count]:
                decoded = _decode(message)
                if decoded is not None:
                    count += 1
                    yield decoded
            if messages:
                last_message_at = time.monotonic()
            elif not follow and time.monotonic() - last_message_at > timeout_s:
                logger.warning(
                    "results read stopped before the end offsets topic=%s waited_s=%g",
                    topic,
                    timeout_s,
                )
                return
            unfinished = _unfinished(consumer, topic, end_offsets, unfinished)
    finally:
        consumer.close()


def _assign_all(
    consumer: Consumer, topic: str, from_beginning: bool, timeout_s: float
) -> dict[int, tuple[int, int]]:
    """Assign every partition of the topic and return each partition's (low, high) watermarks."""
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
    except KafkaException as exc:
        raise StreamscoreError(f"cannot read topic {topic!r}: {exc.args[0].str()}") from exc
    topic_metadata = metadata.topics.get(topic)
    if topic_metadata is None or topic_metadata.error is not None or not topic_metadata.partitions:
        raise StreamscoreError(f"topic {topic!r} not found on the broker")

    watermarks = {}
    for partition in topic_metadata.partitions:
        try:
            watermarks[partition] = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout_s
            )
        except KafkaException as exc:
            raise StreamscoreError(
                f"cannot read the offsets of topic {topic!r}: {exc.args[0].str()}"
            ) from exc
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    consumer.assign([TopicPartition(topic, partition, start) for partition in watermarks])
    logger.debug("partitions assigned topic=%s watermarks=%s", topic, watermarks)
    return watermarks


def _unfinished(
    consumer: Consumer, topic: str, end_offsets: dict[int, int], partitions: set[int]
) -> set[int]:
    """Return the partitions whose position is still before their end offset.

    The position, unlike the offset of the last message, also moves past transaction markers,
    which never reach the application. It is negative until the first fetch from a partition.
    """
    if not partitions:
        return partitions
    positions = consumer.position([TopicPartition(topic, p) for p in partitions])
    return {tp.partition for tp in positions if tp.offset < end_offsets[tp.partition]}


def _decode(message: Message) -> ResultMessage | None:
    """Decode one consumed message, or return None for a consumer event that is not a message."""
    error = message.error()
    if error is not None:
        if error.fatal():
            raise StreamscoreError(f"reading results failed: {error.str()}")
        logger.warning("consume error error=%s", error.str())
        return None
    partition, offset, value = message.partition(), message.offset(), message.value()
    if partition is None or offset is None:
        return None

    try:
        result = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError as exc:
        return ResultMessage(partition, offset, value, None, f"invalid JSON: {exc}")
    if not isinstance(result, dict):
        problem = f"expected a JSON object, got {_kind(result)}"
        return ResultMessage(partition, offset, value, None, problem)
    missing = [key for key in _REQUIRED_KEYS if key not in result]
    if missing:
        return ResultMessage(partition, offset, value, None, f"missing key {missing[0]!r}")
    return ResultMessage(partition, offset, value, result)


def _kind(value: Any) -> str:
    return "no value" if value is None else type(value).__name__


@click.command()
@click.option("--follow", is_flag=True, help="Keep printing new results until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="Print each result as its JSON line.")
@click.option(
    "--limit", type=click.IntRange(min=1), help="Stop after N messages, invalid ones included."
)
@click.option("--topic", help="Topic to read (default: topics.output from the settings).")
@click.pass_obj
def results(
    cli_context: CliContext, follow: bool, as_json: bool, limit: int | None, topic: str | None
) -> None:
    """Print the results on the output topic, then a count per label."""
    settings = cli_context.settings()
    labels: Counter[str] = Counter()
    invalid = 0
    if not as_json:
        click.echo(_format_line("event_id", "label", "probability", "model_version"))
    try:
        for message in read_results(settings, topic=topic, follow=follow, limit=limit):
            if message.result is None or message.value is None:
                invalid += 1
                click.echo(
                    f"warning: partition {message.partition} offset {message.offset}: "
                    f"not a result: {message.error}",
                    err=True,
                )
                continue
            labels[str(message.result["label"])] += 1
            # A valid result was valid JSON, so its value is valid UTF-8.
            click.echo(message.value.decode() if as_json else _format_result(message.result))
    except KeyboardInterrupt:
        # Ctrl-C is how `--follow` ends. Without `--follow`, an interruption is an error.
        if not follow:
            raise
    click.echo(_summary(labels, invalid), err=True)


def _format_line(event_id: str, label: str, probability: str, model_version: str) -> str:
    return f"{event_id:<32}  {label:<8}  {probability:>11}  {model_version}"


def _format_result(result: dict[str, Any]) -> str:
    probability = result.get("probability")
    return _format_line(
        str(result["event_id"]),
        str(result["label"]),
        f"{probability:.4f}" if isinstance(probability, int | float) else "-",
        str(result.get("model_version", "-")),
    )


def _summary(labels: Counter[str], invalid: int) -> str:
    total = sum(labels.values())
    summary = f"{total} result" + ("" if total == 1 else "s")
    if labels:
        summary += ": " + ", ".join(f"{label} {labels[label]}" for label in sorted(labels))
    if invalid:
        summary += f"; {invalid} invalid message" + ("" if invalid == 1 else "s") + " skipped"
    return summary
