"""The worker loop: poll a micro-batch, decode and validate, score, produce, store offsets.

Delivery guarantee: at least once. An input offset is stored only after the result or
dead-letter record of that event, and of every earlier event of its partition, was delivered.
librdkafka's auto-commit commits stored offsets only. The worker also commits them synchronously
when partitions are revoked and when it stops. A crash can therefore repeat the results of at
most the last auto-commit interval, and a graceful stop or rebalance repeats none.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import cast

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from stream.health import Health
from stream.metrics import WorkerMetrics, observe_many
from stream.monitor import WorkerMonitor
from stream.reload import ModelWatcher
from stream.scorer import Prediction, Scorer
from stream.shadow import compare_with_shadow
from streamscore.events import Event, InvalidEventError, Reason, format_time
from streamscore.kafka import consumer_config, producer_config
from streamscore.settings import Settings

logger = logging.getLogger(__name__)

PartitionKey = tuple[str, int]
Headers = list[tuple[str, str | bytes | None]]


@dataclass
class _Batch:
    """One polled batch on its way through the steps, and what happened to each event."""

    messages: list[Message]
    events: list[tuple[Message, Event]] = field(default_factory=list)
    rejected: list[tuple[Message, Reason, str]] = field(default_factory=list)
    failed_offsets: dict[PartitionKey, int] = field(default_factory=dict)
    # When the batch's predict_proba call returned; every result of the batch carries it.
    scored_at: str = ""
    # Seconds from event time to delivery report, per delivered result; metrics take them
    # per batch, because a histogram observation per event cost more than producing it.
    latencies_s: list[float] = field(default_factory=list)


class Worker:
    """A consumer-group member that scores the input topic into the output topic.

    Owns one consumer and one producer. `run` blocks until a signal handler or another thread
    calls `request_stop`. It then finishes the batch in hand, commits what was delivered, leaves
    the group and returns. `health`, when given, is the state that /healthz and /readyz serve.
    """

    def __init__(
        self,
        settings: Settings,
        scorer: Scorer,
        metrics: WorkerMetrics,
        watcher: ModelWatcher | None = None,
        shadow_watcher: ModelWatcher | None = None,
        health: Health | None = None,
    ) -> None:
        self._settings = settings
        self._scorer = scorer
        self._metrics = metrics
        self._watcher = watcher
        self._shadow_watcher = shadow_watcher
        self._shadow: Scorer | None = None
        self._stop = threading.Event()
        self._assigned: set[PartitionKey] = set()
        self._stored: dict[PartitionKey, int] = {}
        self._monitor = WorkerMonitor(
            settings, metrics, health or Health.from_settings(settings.worker)
        )
        consumer_settings = consumer_config(settings.kafka, settings.worker.group_id)
        consumer_settings.update(self._monitor.consumer_callbacks(consumer_settings))
        self._consumer = Consumer(consumer_settings)
        # Delivery reports of a batch must arrive well within max.poll.interval.ms, or the
        # worker would be removed from the group while it waits.
        timeout_ms = settings.kafka.max_poll_interval_ms // 2
        producer_settings = producer_config(settings.kafka)
        producer_settings.setdefault("message.timeout.ms", timeout_ms)
        self._producer = Producer(producer_settings)
        metrics.model_info.labels(scorer.name, scorer.version, scorer.run_id).set(1)
        self._monitor.on_model(scorer)

    def request_stop(self) -> None:
        """Ask `run` to return after the batch in hand; safe from signal handlers and threads."""
        self._stop.set()

    @property
    def is_stopping(self) -> bool:
        """Whether a stop was requested."""
        return self._stop.is_set()

    def run(self) -> None:
        """Consume, score and produce until a stop is requested, then close cleanly."""
        worker = self._settings.worker
        self._consumer.subscribe(
            [self._settings.topics.input],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        logger.info(
            "worker started group=%s topic=%s model=%s/%s",
            worker.group_id,
            self._settings.topics.input,
            self._scorer.name,
            self._scorer.version,
        )
        for watcher in (self._watcher, self._shadow_watcher):
            if watcher is not None:
                watcher.start()
        try:
            while not self._stop.is_set():
                self._monitor.on_loop()
                self._swap_models()
                messages = self._poll_batch()
                if messages:
                    self.process(messages)
        finally:
            self._close()

    def _swap_models(self) -> None:
        """Serve the versions the watchers loaded; called between two batches only."""
        if self._watcher is not None and (loaded := self._watcher.take()) is not None:
            served = self._scorer
            self._metrics.model_info.remove(served.name, served.version, served.run_id)
            self._metrics.model_info.labels(loaded.name, loaded.version, loaded.run_id).set(1)
            self._scorer = loaded
            self._monitor.on_model(loaded)
            logger.info(
                "model swapped name=%s from_version=%s to_version=%s",
                loaded.name,
                served.version,
                loaded.version,
            )
        if self._shadow_watcher is not None and (shadow := self._shadow_watcher.take()) is not None:
            if self._shadow is not None:
                old = self._shadow
                self._metrics.shadow_model_info.remove(old.name, old.version, old.run_id)
            self._metrics.shadow_model_info.labels(shadow.name, shadow.version, shadow.run_id).set(
                1
            )
            self._shadow = shadow
            logger.info("shadow model swapped name=%s version=%s", shadow.name, shadow.version)

    def _poll_batch(self) -> list[Message]:
        """Poll up to `batch_size` events: wait for the first, then take those already fetched.

        `Consumer.consume` returns only when the batch is full or the timeout passed, so at a
        low rate every event would wait up to `batch_wait_ms`. Waiting only for the first event
        keeps latency low, while a backlog still fills whole batches from the local queue.
        """
        worker = self._settings.worker
        messages = self._consumer.consume(1, worker.batch_wait_ms / 1000)
        if messages and worker.batch_size > 1:
            messages += self._consumer.consume(worker.batch_size - 1, 0)
        return messages

    def process(self, messages: list[Message]) -> None:
        """Handle one polled batch.

        Steps:
            1. Decode and validate each message; invalid ones are set aside with their reason.
            2. Score the valid events with one predict_proba call.
            3. Produce a result per scored event and a dead-letter record per rejected one.
            4. Flush: wait for every delivery report.
            5. Store the offsets of the delivered prefix of each partition; re-read the rest.
        """
        batch = _Batch([message for message in messages if not self._is_consume_error(message)])
        self._metrics.batch_size.observe(len(batch.messages))
        self._metrics.events_consumed.inc(len(batch.messages))

        # 1. Decode and validate.
        contract = self._scorer.contract
        for message in batch.messages:
            try:
                batch.events.append((message, contract.decode(message.value())))
            except InvalidEventError as exc:
                batch.rejected.append((message, exc.reason, exc.detail))

        # 2. Score.
        predictions = self._score(batch)

        # 3. Produce.
        for (message, event), prediction in zip(batch.events, predictions, strict=True):
            if prediction is not None:
                self._produce_result(batch, message, event, prediction)
        for message, reason, detail in batch.rejected:
            self._produce_dead_letter(batch, message, reason, detail)

        # 4. Flush.
        self._flush()
        self._metrics.results_produced.inc(len(batch.latencies_s))
        observe_many(self._metrics.end_to_end_latency, batch.latencies_s)

        # 5. Store offsets.
        self._store_offsets(batch)

    def _is_consume_error(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return False
        logger.warning("consume error error=%s", error.str())
        self._monitor.on_consume_error(error)
        return True

    def _score(self, batch: _Batch) -> list[Prediction | None]:
        """Score the batch's events; the events the model failed on join the rejected ones."""
        if not batch.events:
            return []
        started = time.perf_counter()
        events = [event for _, event in batch.events]
        scored = self._scorer.score(events)
        self._metrics.scoring_duration.observe(time.perf_counter() - started)
        batch.scored_at = format_time()
        self._monitor.on_scored(events, scored)
        for index, detail in scored.failures.items():
            batch.rejected.append((batch.events[index][0], Reason.SCORING_FAILED, detail))
        if self._shadow is not None:
            compare_with_shadow(self._shadow, events, scored, self._metrics)
        return scored.predictions

    def _produce_result(
        self, batch: _Batch, message: Message, event: Event, prediction: Prediction
    ) -> None:
        result = self._scorer.result(event, prediction, batch.scored_at)
        headers: Headers = [
            ("model.name", self._scorer.name.encode()),
            ("model.version", self._scorer.version.encode()),
        ]
        key = message.key() if message.key() is not None else event.event_id.encode()
        origin_s = event.event_time_s
        if origin_s is None:
            origin_s = message.timestamp()[1] / 1000
        on_delivery = partial(self._on_delivery, batch, message, None, origin_s)
        self._produce(self._settings.topics.output, key, orjson.dumps(result), headers, on_delivery)

    def _produce_dead_letter(
        self, batch: _Batch, message: Message, reason: Reason, detail: str
    ) -> None:
        headers: Headers = [
            ("error.reason", reason.value.encode()),
            ("error.message", detail.encode("utf-8", "replace")),
            ("source.topic", str(message.topic()).encode()),
            ("source.partition", str(message.partition()).encode()),
            ("source.offset", str(message.offset()).encode()),
        ]
        value = message.value()
        limit = self._settings.worker.max_event_bytes
        if value is not None and len(value) > limit:
            # Copying an oversized event whole could exceed the producer's message.max.bytes and
            # fail on every retry. The complete event stays in the input topic at this offset.
            headers.append(("error.value_truncated_from_bytes", str(len(value)).encode()))
            value = value[:limit]
        on_delivery = partial(self._on_delivery, batch, message, reason, 0.0)
        topic = self._settings.topics.dead_letter
        self._produce(topic, message.key(), value, headers, on_delivery)
        logger.warning(
            "event dead-lettered reason=%s topic=%s partition=%d offset=%d",
            reason.value,
            message.topic(),
            message.partition(),
            message.offset(),
        )

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        on_delivery: Callable[[KafkaError | None, Message | None], None],
    ) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                return
            except BufferError:
                # The local queue is full: serve delivery reports to make room, then retry.
                self._producer.poll(0.1)
            except KafkaException as exc:
                # Rejected before it was queued, e.g. larger than message.max.bytes.
                on_delivery(exc.args[0], None)
                return

    def _on_delivery(
        self,
        batch: _Batch,
        source: Message,
        reason: Reason | None,
        origin_s: float,
        error: KafkaError | None,
        produced: Message | None,
    ) -> None:
        """Count one delivery report; a failure marks its source event for re-reading."""
        if error is None:
            if reason is None:
                batch.latencies_s.append(max(0.0, time.time() - origin_s))
            else:
                self._metrics.events_dead_lettered.labels(reason.value).inc()
            return
        key, offset = _position(source)
        batch.failed_offsets[key] = min(offset, batch.failed_offsets.get(key, offset))
        target = "dead_letter" if reason is not None else "output"
        self._metrics.delivery_failures.labels(target).inc()
        logger.warning(
            "delivery failed error=%s target=%s source_topic=%s partition=%d offset=%d",
            error.str(),
            target,
            key[0],
            key[1],
            offset,
        )

    def _flush(self) -> None:
        """Wait for every delivery report; message.timeout.ms bounds how long each can take."""
        self._monitor.on_flush_wait(len(self._producer))
        while (remaining := self._producer.flush(self._settings.worker.flush_timeout_s)) > 0:
            self._monitor.on_flush_wait(remaining)
            logger.warning("delivery reports pending remaining=%d", remaining)
        self._monitor.on_flush_wait(0)

    def _store_offsets(self, batch: _Batch) -> None:
        next_offsets: dict[PartitionKey, int] = {}
        for message in batch.messages:
            key, offset = _position(message)
            next_offsets[key] = max(next_offsets.get(key, 0), offset + 1)
        for key, offset in batch.failed_offsets.items():
            next_offsets[key] = offset
        to_store = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
        try:
            self._consumer.store_offsets(offsets=to_store)
        except KafkaException as exc:
            # Partitions revoked or lost meanwhile: their new owner re-reads these events.
            logger.warning("store offsets failed error=%s", exc.args[0].str())
            return
        self._stored.update(next_offsets)
        for (topic, partition), offset in batch.failed_offsets.items():
            self._consumer.seek(TopicPartition(topic, partition, offset))
        if batch.failed_offsets:
            logger.warning(
                "re-reading undelivered events after backoff partitions=%d backoff_s=%g",
                len(batch.failed_offsets),
                self._settings.worker.retry_backoff_s,
            )
            self._stop.wait(self._settings.worker.retry_backoff_s)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned.update((tp.topic, tp.partition) for tp in partitions)
        self._metrics.assigned_partitions.set(len(self._assigned))
        self._monitor.on_assign(partitions)
        logger.info("partitions assigned partitions=%s", _describe(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._commit([(tp.topic, tp.partition) for tp in partitions])
        self._forget(partitions)
        self._monitor.on_revoke(partitions)
        logger.info("partitions revoked partitions=%s", _describe(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Another member may own these already: committing now could move its offsets back.
        self._forget(partitions)
        self._monitor.on_lost(partitions)
        logger.warning("partitions lost partitions=%s", _describe(partitions))

    def _forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._assigned.discard((tp.topic, tp.partition))
            self._stored.pop((tp.topic, tp.partition), None)
        self._metrics.assigned_partitions.set(len(self._assigned))

    def _commit(self, keys: list[PartitionKey]) -> None:
        """Commit the stored offsets of these partitions synchronously."""
        stored = self._stored
        offsets = [TopicPartition(t, p, stored[(t, p)]) for t, p in keys if (t, p) in stored]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            self._monitor.on_commit(is_ok=False)
            logger.warning("commit failed error=%s", exc.args[0].str())
            return
        self._monitor.on_commit(is_ok=True)
        logger.debug("offsets committed partitions=%s", _describe(offsets))

    def _close(self) -> None:
        for watcher in (self._watcher, self._shadow_watcher):
            if watcher is not None:
                watcher.stop()
        self._flush()
        self._commit(sorted(self._stored))
        self._consumer.close()
        logger.info("worker stopped group=%s", self._settings.worker.group_id)


def _position(message: Message) -> tuple[PartitionKey, int]:
    """Return the topic, partition and offset of a consumed message, which always has them."""
    return (cast(str, message.topic()), cast(int, message.partition())), cast(int, message.offset())


def _describe(partitions: list[TopicPartition]) -> str:
    return ",".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)
