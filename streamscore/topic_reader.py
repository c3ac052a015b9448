"""Read a topic's messages across all of its partitions, without joining a consumer group.

The reader assigns every partition of the topic itself and never commits, so reading does not
disturb the workers or other readers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

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

logger = logging.getLogger(__name__)

# How long one consume call waits, in seconds. It bounds how late Ctrl-C is noticed.
_CONSUME_TIMEOUT_S = 0.5
# Messages one consume call returns at most.
_CONSUME_BATCH = 500


def read_messages(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool = True,
    follow: bool = False,
    limit: int | None = None,
    timeout_s: float = 10.0,
) -> Iterator[Message]:
    """Yield the messages of a topic, across all of its partitions; consume errors are logged.

    Args:
        settings: Kafka connection.
        topic: topic to read.
        from_beginning: start at the first message, else at the end.
        follow: keep waiting for new messages. Otherwise stop once every partition reached the
            end offset it had when reading began.
        limit: stop after this many messages.
        timeout_s: how long to wait for the topic's metadata, and, unless following, for the
            next message before stopping short of the end offsets.

    Raises:
        StreamscoreError: the metadata request timed out, the topic does not exist, or a
            consume error is fatal.
    """
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
            for message in messages:
                if _is_consume_error(message) or (limit is not None and count >= limit):
                    continue
                count += 1
                yield message
            if messages:
                last_message_at = time.monotonic()
            elif not follow and time.monotonic() - last_message_at > timeout_s:
                logger.warning(
                    "read stopped before the end offsets topic=%s waited_s=%g", topic, timeout_s
                )
                return
            unfinished = _unfinished(consumer, topic, end_offsets, unfinished)
    finally:
        consumer.close()


def _is_consume_error(message: Message) -> bool:
    """Return whether a consumed message is an error event, raising on a fatal one."""
    error = message.error()
    if error is None:
        return message.partition() is None or message.offset() is None
    if error.fatal():
        raise StreamscoreError(f"reading failed: {error.str()}")
    logger.warning("consume error error=%s", error.str())
    return True


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
