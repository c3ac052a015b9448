"""The worker loop: poll a micro-batch, decode and validate, score, produce, commit.

Two delivery guarantees, chosen by `worker.processing_guarantee`:

- at_least_once: an input offset is stored only after the result or dead-letter record of that
  event, and of every earlier event of its partition, was delivered. librdkafka's auto-commit
  commits stored offsets only; the worker also commits them synchronously when partitions are
  revoked and when it stops. A crash can repeat the results of at most the last auto-commit
  interval; a graceful stop or rebalance repeats none. The results of one batch travel to the
  broker while the next batch is polled and scored. The worker waits for them before it
  produces that next batch, and before it commits on a rebalance or a stop.
- exactly_once: each batch is one Kafka transaction holding its results, its dead-letter
  records and the next input offsets. A consumer reading with `isolation.level=read_committed`
  receives the results of committed batches only, each once. A batch whose transaction fails is
  aborted and read again.

Either way a revoked partition has no work in flight once its offsets are committed, and
batches grow only as large as a quarter of `max.poll.interval.ms` allows.
"""

from __future__ import annotations

import gc
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
from stream.transactions import TransactionalId, claim_transactional_id
from streamscore.errors import StreamscoreError
from streamscore.events import Event, InvalidEventError, Reason, format_time
from streamscore.kafka import consumer_config, producer_config
from streamscore.settings import Settings

logger = logging.getLogger(__name__)

PartitionKey = tuple[str, int]
Headers = list[tuple[str, str | bytes | None]]

# The first batch is this small at most, because nothing is known yet of the model's speed.
_FIRST_BATCH_LIMIT = 100
# A batch may take this share of max.poll.interval.ms from poll to commit.
_POLL_INTERVAL_SHARE = 0.25
# Once this many at_least_once events are stored but uncommitted, commit without waiting for
# the next auto-commit.
_COMMIT_AT_ONCE_EVENTS = 250
# How long one transaction call may wait for the broker, and how often it is tried. A worker
# that cannot finish a transaction in that time exits; its successor aborts the transaction.
_TRANSACTION_TIMEOUT_S = 30.0
_TRANSACTION_ATTEMPTS = 2


class TransactionError(StreamscoreError):
    """A transaction could neither commit nor abort; the worker must start again."""


class TransactionFencedError(TransactionError):
    """Another worker took over this worker's transactional id; this one must stop."""


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
    # Records produced whose delivery report has not arrived yet.
    pending: int = 0


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
        worker = settings.worker
        self._batch_limit = min(worker.batch_size, _FIRST_BATCH_LIMIT)
        self._failures_in_a_row = 0
        self._uncommitted_events = 0
        # The at_least_once batch whose results are produced but not all delivered yet.
        self._in_flight: _Batch | None = None
        # Partitions to seek back to their first failed event before the next produce.
        self._to_rewind: dict[PartitionKey, int] = {}
        # Partitions read again from a failed event, which is retried alone: the events behind
        # it would otherwise be produced again on every attempt. Maps each to that offset.
        self._retrying: dict[PartitionKey, int] = {}
        # How many times partitions were revoked or lost; polls compare it before and after.
        self._forgotten = 0
        self._transactional = worker.processing_guarantee == "exactly_once"
        consumer_settings = consumer_config(
            settings.kafka, worker.group_id, on_commit=self._on_commit
        )
        consumer_settings.update(self._monitor.consumer_callbacks(consumer_settings))
        # Delivery reports of a batch must arrive well within max.poll.interval.ms, or the
        # worker would be removed from the group while it waits.
        producer_settings = producer_config(settings.kafka)
        producer_settings.setdefault("message.timeout.ms", settings.kafka.max_poll_interval_ms // 2)
        producer_settings["error_cb"] = self._on_producer_error
        self._producer_failure: str | None = None
        self._transactional_id: TransactionalId | None = None
        if self._transactional:
            # Offsets go into each transaction instead; read_committed skips aborted input.
            consumer_settings.update(
                {"enable.auto.commit": False, "isolation.level": "read_committed"}
            )
            self._transactional_id = claim_transactional_id(
                worker.transactional_id, worker.group_id, settings.state_dir
            )
            producer_settings["transactional.id"] = self._transactional_id.value
            # librdkafka refuses a delivery timeout longer than the transaction's.
            transaction_timeout_ms = int(producer_settings.get("transaction.timeout.ms", 60_000))
            producer_settings["message.timeout.ms"] = min(
                int(producer_settings["message.timeout.ms"]), transaction_timeout_ms
            )
        self._consumer = Consumer(consumer_settings)
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
            "worker started group=%s topic=%s guarantee=%s model=%s/%s",
            worker.group_id,
            self._settings.topics.input,
            worker.processing_guarantee,
            self._scorer.name,
            self._scorer.version,
        )
        for watcher in (self._watcher, self._shadow_watcher):
            if watcher is not None:
                watcher.start()
        _freeze_heap()
        try:
            if self._transactional:
                self._init_transactions()
            while not self._stop.is_set():
                self._monitor.on_loop()
                self._swap_models()
                messages = self._poll_batch()
                if messages:
                    self.process(messages)
                else:
                    self._finish_in_flight()
        finally:
            self._close()

    def _init_transactions(self) -> None:
        """Register the transactional id, fencing and aborting any previous holder's work.

        Waits for the broker as long as it takes, unless a stop is requested meanwhile.
        """
        while not self._stop.is_set():
            try:
                self._producer.init_transactions(_TRANSACTION_TIMEOUT_S)
            except KafkaException as exc:
                error = exc.args[0]
                if not error.retriable():
                    raise TransactionFencedError(
                        f"cannot initialise transactions: {error.str()}"
                    ) from exc
                logger.warning("transactions not initialised yet, retrying error=%s", error.str())
                # Waiting for the broker is not a stuck loop: /readyz reports the broker.
                self._monitor.on_loop()
                continue
            logger.info(
                "transactions initialised transactional_id=%s",
                self._producer_transactional_id,
            )
            return

    @property
    def _producer_transactional_id(self) -> str:
        return self._transactional_id.value if self._transactional_id else ""

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
            del served
            _freeze_heap()
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
        """Poll up to the batch limit: wait for the first event, then take those already fetched.

        `Consumer.consume` returns only when the batch is full or the timeout passed, so at a
        low rate every event would wait up to `batch_wait_ms`. Waiting only for the first event
        keeps latency low, while a backlog still fills whole batches from the local queue.
        """
        limit = self._batch_limit
        messages = self._consumer.consume(1, self._settings.worker.batch_wait_ms / 1000)
        if not messages or limit == 1:
            return messages
        forgotten = self._forgotten
        messages += self._consumer.consume(limit - 1, 0)
        if self._forgotten == forgotten:
            return messages
        # A rebalance during the second call revoked partitions of some events; their new owner
        # reads them from the last commit. Errors stay in, to be counted and logged.
        return [
            m
            for m in messages
            if m.error() is not None or (m.topic(), m.partition()) in self._assigned
        ]

    def _adapt_batch_limit(self, events: int, elapsed_s: float) -> None:
        """Let batches double until one would take its share of max.poll.interval.ms.

        A member that does not poll within max.poll.interval.ms is removed from the group and
        its partitions go to another, so a slow model must be given fewer events per poll.
        """
        budget_s = self._settings.kafka.max_poll_interval_ms / 1000 * _POLL_INTERVAL_SHARE
        fits = int(budget_s * events / elapsed_s) if elapsed_s > 0 else self._batch_limit
        limit = max(1, min(self._settings.worker.batch_size, 2 * self._batch_limit, fits))
        if limit < self._batch_limit:
            logger.info(
                "batch limit lowered limit=%d seconds_per_event=%.4f budget_s=%g",
                limit,
                elapsed_s / events,
                budget_s,
            )
        self._batch_limit = limit

    def process(self, messages: list[Message]) -> None:
        """Handle one polled batch.

        Steps:
            1. Decode and validate each message; invalid ones are set aside with their reason.
            2. Score the valid events with one predict_proba call.
            3. at_least_once: finish the previous batch (see `_finish_in_flight`), and hold
               back the events of partitions whose failed event is retried (`_hold_back`).
            4. Produce a result per scored event and a dead-letter record per rejected one,
               inside a transaction under exactly_once.
            5. exactly_once: wait for every delivery report, then commit the transaction with
               the batch's offsets, or abort it and re-read the whole batch. at_least_once:
               the batch stays in flight while the next one is polled and scored.
        """
        started = time.perf_counter()
        batch = _Batch([message for message in messages if not self._is_consume_error(message)])
        self._metrics.batch_size.observe(len(batch.messages))
        self._metrics.events_consumed.inc(len(batch.messages))
        if not batch.messages:
            self._finish_in_flight()
            return
        polled = len(batch.messages)
        if self._transactional:
            self._producer.begin_transaction()

        # 1. Decode and validate.
        self._decode(batch)

        # 2. Score.
        predictions = self._score(batch)

        # 3. Finish the previous batch.
        rewound = self._finish_in_flight()
        if rewound or self._retrying:
            predictions = self._hold_back(batch, predictions, rewound)

        # 4. Produce.
        for (message, event), prediction in zip(batch.events, predictions, strict=True):
            if prediction is not None:
                self._produce_result(batch, message, event, prediction)
        for message, reason, detail in batch.rejected:
            self._produce_dead_letter(batch, message, reason, detail)

        # 5. Commit the transaction, or leave the batch in flight.
        if self._transactional:
            self._flush()
            if self._commit_transaction(batch):
                self._count_delivered(batch)
            if batch.failed_offsets:
                self._back_off()
            else:
                self._failures_in_a_row = 0
        else:
            self._producer.poll(0)
            self._in_flight = batch
        self._adapt_batch_limit(polled, time.perf_counter() - started)

    def _finish_in_flight(self) -> dict[PartitionKey, int]:
        """Finish the batch in flight, and rewind partitions where a delivery failed.

        Called between a poll and the produce calls of the polled batch, so the events that
        poll returned for a rewound partition all come after its first failed event. Waits
        for the backoff when something was rewound.

        Returns:
            The first failed offset of each rewound partition; empty when all was delivered.
        """
        failed = self._wait_for_in_flight()
        for key, offset in self._to_rewind.items():
            failed[key] = min(offset, failed.get(key, offset))
        self._to_rewind = {}
        rewound = {key: offset for key, offset in failed.items() if key in self._assigned}
        if rewound:
            self._rewind(rewound)
            self._retrying.update(rewound)
            self._back_off()
        return rewound

    def _wait_for_in_flight(self) -> dict[PartitionKey, int]:
        """Wait for the delivery reports of the batch in flight, then store its offsets.

        The offsets stored are those of the delivered prefix of each partition.

        Returns:
            The first failed offset of each partition with a failed delivery.
        """
        batch = self._in_flight
        if batch is None:
            return {}
        self._in_flight = None
        self._monitor.on_flush_wait(batch.pending)
        warn_at = time.monotonic() + self._settings.worker.flush_timeout_s
        while batch.pending > 0:
            self._producer.poll(0.1)
            self._monitor.on_flush_wait(len(self._producer))
            if time.monotonic() >= warn_at:
                logger.warning("delivery reports pending remaining=%d", batch.pending)
                warn_at = time.monotonic() + self._settings.worker.flush_timeout_s
        self._monitor.on_flush_wait(0)
        self._store_offsets(batch)
        self._count_delivered(batch)
        if self._retrying:
            for message in batch.messages:
                key, _ = _position(message)
                if key not in batch.failed_offsets:
                    self._retrying.pop(key, None)
        # The backoff keeps growing while any failed event is still being retried.
        if not batch.failed_offsets and not self._retrying:
            self._failures_in_a_row = 0
        return dict(batch.failed_offsets)

    def _hold_back(
        self,
        batch: _Batch,
        predictions: list[Prediction | None],
        rewound: dict[PartitionKey, int],
    ) -> list[Prediction | None]:
        """Remove the events that must wait from a batch, so that they are read again later.

        Events of partitions rewound just now were polled before the seek and come after the
        failed event. Of a partition whose failed event is retried, only the first event stays,
        and the partition is sought to the event after it.

        Returns:
            The predictions of the events that remain.
        """
        first_offsets: dict[PartitionKey, int] = {}
        for message in batch.messages:
            key, offset = _position(message)
            if key in self._retrying and key not in rewound:
                first_offsets[key] = min(offset, first_offsets.get(key, offset))

        def is_kept(message: Message) -> bool:
            key, offset = _position(message)
            if key in rewound:
                return False
            return key not in first_offsets or offset == first_offsets[key]

        kept_indices = [i for i, (message, _) in enumerate(batch.events) if is_kept(message)]
        batch.events = [batch.events[i] for i in kept_indices]
        batch.rejected = [item for item in batch.rejected if is_kept(item[0])]
        batch.messages = [message for message in batch.messages if is_kept(message)]
        self._rewind({key: offset + 1 for key, offset in first_offsets.items()})
        return [predictions[i] for i in kept_indices]

    def _count_delivered(self, batch: _Batch) -> None:
        self._metrics.results_produced.inc(len(batch.latencies_s))
        observe_many(self._metrics.end_to_end_latency, batch.latencies_s)

    def _decode(self, batch: _Batch) -> None:
        contract = self._scorer.contract
        for message in batch.messages:
            try:
                batch.events.append((message, contract.decode(message.value())))
            except InvalidEventError as exc:
                batch.rejected.append((message, exc.reason, exc.detail))

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
        batch.pending += 1
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
        batch.pending += 1
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
        batch.pending -= 1
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
        """Wait for every delivery report of a transaction's batch.

        Raises:
            TransactionFencedError: the transactional producer failed fatally, which happens
                when a newer worker took over its transactional id.
        """
        self._monitor.on_flush_wait(len(self._producer))
        self._wait_for_deliveries()
        self._monitor.on_flush_wait(0)

    def _wait_for_deliveries(self) -> None:
        """Serve delivery reports until none is pending, for a transactional producer.

        confluent-kafka 2.16's `flush` raises a fenced producer's fatal error as a bare
        KafkaError, which no `except` clause can catch; `poll` raises a KafkaException.
        """
        while len(self._producer) > 0 and self._producer_failure is None:
            try:
                self._producer.poll(0.1)
            except KafkaException as exc:
                if not exc.args[0].fatal():
                    raise
                self._producer_failure = exc.args[0].str()
        if self._producer_failure is not None:
            raise TransactionFencedError(
                f"the producer of {self._producer_transactional_id} failed: "
                f"{self._producer_failure}"
            )

    def _on_producer_error(self, error: KafkaError) -> None:
        """Keep a fatal producer error for the loop; librdkafka already logged the others.

        Without this callback confluent-kafka raises a fatal error from whichever call serves
        it next, flush included, and not always as a KafkaException.
        """
        if error.fatal():
            self._producer_failure = error.str()

    def _store_offsets(self, batch: _Batch) -> None:
        next_offsets: dict[PartitionKey, int] = {}
        for message in batch.messages:
            key, offset = _position(message)
            next_offsets[key] = max(next_offsets.get(key, 0), offset + 1)
        for key, offset in batch.failed_offsets.items():
            next_offsets[key] = offset
        # Partitions lost while the batch was in flight belong to another member now.
        next_offsets = {key: o for key, o in next_offsets.items() if key in self._assigned}
        if not next_offsets:
            return
        to_store = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
        try:
            self._consumer.store_offsets(offsets=to_store)
        except KafkaException as exc:
            # Partitions revoked or lost meanwhile: their new owner re-reads these events.
            logger.warning("store offsets failed error=%s", exc.args[0].str())
            return
        self._stored.update(next_offsets)
        # A crash repeats what was stored but not yet committed. Right after a restart a
        # worker works through a backlog far faster than auto-commit's interval, so commit as
        # soon as many events are at stake.
        self._uncommitted_events += len(batch.messages)
        if self._uncommitted_events >= _COMMIT_AT_ONCE_EVENTS:
            stored = [TopicPartition(t, p, o) for (t, p), o in self._stored.items()]
            self._consumer.commit(offsets=stored, asynchronous=True)
            self._uncommitted_events = 0

    def _commit_transaction(self, batch: _Batch) -> bool:
        """Commit the batch's transaction with its input offsets; return whether it committed.

        A failed delivery, or a commit the broker refuses, aborts the transaction; the batch
        is then read again from its first offsets.

        Raises:
            TransactionFencedError: another worker initialised this transactional id.
        """
        first_offsets: dict[PartitionKey, int] = {}
        next_offsets: dict[PartitionKey, int] = {}
        for message in batch.messages:
            key, offset = _position(message)
            first_offsets[key] = min(first_offsets.get(key, offset), offset)
            next_offsets[key] = max(next_offsets.get(key, 0), offset + 1)
        try:
            if batch.failed_offsets:
                raise _AbortBatch(f"{len(batch.failed_offsets)} partitions had failed deliveries")
            self._call_retrying(
                self._producer.send_offsets_to_transaction,
                [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()],
                self._consumer.consumer_group_metadata(),
                _TRANSACTION_TIMEOUT_S,
            )
            self._call_retrying(self._producer.commit_transaction, _TRANSACTION_TIMEOUT_S)
        except (_AbortBatch, KafkaException) as exc:
            reason = str(exc) if isinstance(exc, _AbortBatch) else exc.args[0].str()
            if isinstance(exc, KafkaException) and exc.args[0].fatal():
                raise TransactionFencedError(
                    f"transaction of {self._producer_transactional_id} failed fatally: {reason}"
                ) from exc
            self._abort_transaction(reason)
            batch.failed_offsets.update(first_offsets)
            self._rewind(first_offsets)
            return False
        self._metrics.transactions.labels("committed").inc()
        self._monitor.on_transaction_committed(next_offsets)
        return True

    def _call_retrying(self, call: Callable[..., None], *args: object) -> None:
        """Call a transaction method, again while its error is retriable, at most twice."""
        for attempt in range(1, _TRANSACTION_ATTEMPTS + 1):
            try:
                call(*args)
                return
            except KafkaException as exc:
                error = exc.args[0]
                is_last = attempt == _TRANSACTION_ATTEMPTS or self._stop.is_set()
                if not error.retriable() or error.txn_requires_abort() or is_last:
                    raise
                logger.warning("transaction call retried error=%s", error.str())

    def _abort_transaction(self, reason: str) -> None:
        self._metrics.transactions.labels("aborted").inc()
        logger.warning("transaction aborted, batch will be read again reason=%s", reason)
        try:
            self._call_retrying(self._producer.abort_transaction, _TRANSACTION_TIMEOUT_S)
        except KafkaException as exc:
            error_class = TransactionFencedError if exc.args[0].fatal() else TransactionError
            raise error_class(
                f"transaction of {self._producer_transactional_id} could not be aborted: "
                f"{exc.args[0].str()}; the next worker with this id aborts it"
            ) from exc

    def _rewind(self, offsets: dict[PartitionKey, int]) -> None:
        """Seek partitions back, so that their undelivered events are read again."""
        for (topic, partition), offset in offsets.items():
            if (topic, partition) not in self._assigned:
                continue
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:
                logger.warning(
                    "seek failed topic=%s partition=%d error=%s",
                    topic,
                    partition,
                    exc.args[0].str(),
                )

    def _back_off(self) -> None:
        """Wait before reading undelivered events again, twice as long after each failure."""
        worker = self._settings.worker
        wait_s = min(
            worker.retry_backoff_max_s, worker.retry_backoff_s * 2**self._failures_in_a_row
        )
        self._failures_in_a_row += 1
        logger.warning(
            "re-reading undelivered events after backoff attempt=%d backoff_s=%g",
            self._failures_in_a_row,
            wait_s,
        )
        self._stop.wait(wait_s)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned.update((tp.topic, tp.partition) for tp in partitions)
        self._metrics.assigned_partitions.set(len(self._assigned))
        self._monitor.on_assign(partitions)
        # A cooperative rebalance that moves nothing to this worker assigns an empty list.
        if partitions:
            logger.info("partitions assigned partitions=%s", _describe(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Under exactly_once every finished batch's offsets are committed already.
        if not self._transactional:
            # A seek inside this poll could mix events from before and after it in what the
            # poll returns. Partitions that stay assigned are sought back before the next
            # produce instead, and the events this poll returns for them are dropped.
            failed = self._wait_for_in_flight()
            for key, offset in failed.items():
                self._to_rewind[key] = min(offset, self._to_rewind.get(key, offset))
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
        self._forgotten += 1
        for tp in partitions:
            self._assigned.discard((tp.topic, tp.partition))
            self._stored.pop((tp.topic, tp.partition), None)
            self._retrying.pop((tp.topic, tp.partition), None)
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
            # The next owner of these partitions reads their events again.
            self._metrics.commit_failures.inc()
            logger.warning("commit failed error=%s", exc.args[0].str())
            return
        self._metrics.commits.inc()
        logger.debug("offsets committed partitions=%s", _describe(offsets))

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """Count librdkafka's automatic commits; called from poll, on the worker's thread."""
        if error is None:
            self._metrics.commits.inc()
            self._uncommitted_events = 0
        elif error.code() != KafkaError._NO_OFFSET:
            self._metrics.commit_failures.inc()
            logger.warning("automatic commit failed error=%s", error.str())

    def _close(self) -> None:
        for watcher in (self._watcher, self._shadow_watcher):
            if watcher is not None:
                watcher.stop()
        try:
            # Under exactly_once each batch's transaction flushed its records, and a producer
            # that failed fatally cannot flush at all.
            if not self._transactional:
                self._wait_for_in_flight()
                self._commit(sorted(self._stored))
        finally:
            # Leave the group even after a failure, so that the partitions move on at once.
            self._consumer.close()
            if self._transactional_id is not None:
                self._transactional_id.release()
        logger.info("worker stopped group=%s", self._settings.worker.group_id)


def _freeze_heap() -> None:
    """Exempt the objects alive now, the model's among them, from garbage collection.

    A full collection walks every tracked object. With a model, MLflow and pandas loaded,
    that was about 350,000 objects and 160-200 ms, every few seconds at 12,000 events/s
    (measured), the worker's worst latency. Frozen objects are still freed by reference
    counting, but a frozen reference cycle is never collected, so the heap is unfrozen and
    collected before each refreeze.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class _AbortBatch(Exception):  # noqa: N818 - a signal inside the worker, not an error to report
    """The batch's transaction must be aborted."""


def _position(message: Message) -> tuple[PartitionKey, int]:
    """Return the topic, partition and offset of a consumed message, which always has them."""
    return (cast(str, message.topic()), cast(int, message.partition())), cast(int, message.offset())


def _describe(partitions: list[TopicPartition]) -> str:
    return ",".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)
