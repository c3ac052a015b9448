"""The failure scenarios: each streams events through real workers, breaks something, tallies.

Every scenario returns an `Outcome`: how many events were sent, how many got a result or a
dead-letter record, how many got neither (lost) and how many records repeated (duplicates).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
from prometheus_client import CollectorRegistry

from chaos.harness import (
    ChaosContext,
    Outcome,
    PacedProducer,
    Tally,
    WorkerProcess,
    publish,
    sms_events,
)
from chaos.proxy import BrokerProxy
from producer.generate import INVALID_KINDS, EventGenerator
from stream.metrics import WorkerMetrics
from stream.scorer import Scorer
from stream.worker import Worker
from streamscore.broker import EmbeddedBroker, free_port
from streamscore.events import Event
from streamscore.settings import Settings

logger = logging.getLogger(__name__)

# A worker process takes about 10 s from start to its first batch (imports, model load, group
# join), so a stream lasts this long per worker start, and every failure lands mid-stream.
STREAM_SECONDS_PER_START = 12.0
# How long the worker may take to give every event its record once the failures are over.
CATCH_UP_S = 120.0

Scenario = Callable[[ChaosContext, int], Outcome]


def sigkill(guarantee: str, kills: int = 3) -> Scenario:
    """SIGKILL the worker several times while events flow, restarting it each time."""

    def run(context: ChaosContext, count: int) -> Outcome:
        settings = context.settings("sigkill", guarantee)
        events = sms_events(count)
        seconds = STREAM_SECONDS_PER_START * (kills + 1)
        with _Stream(context, settings, events, f"sigkill-{guarantee}", seconds) as stream:
            worker = stream.start_worker()
            for _ in range(kills):
                worker.wait_until_consuming()
                time.sleep(random.uniform(0.3, 1.5))  # noqa: S311 - chaos timing, not secrets
                worker.kill()
                worker = stream.start_worker()
            return stream.finish(worker, notes=[f"{kills} SIGKILLs while events flowed"])

    return run


def rebalance(guarantee: str) -> Scenario:
    """Two more workers join the group while events flow, then leave."""

    def run(context: ChaosContext, count: int) -> Outcome:
        settings = context.settings("rebalance", guarantee)
        events = sms_events(count)
        seconds = STREAM_SECONDS_PER_START * 3
        with _Stream(context, settings, events, f"rebalance-{guarantee}", seconds) as stream:
            first = stream.start_worker()
            first.wait_until_consuming()
            joining = [stream.start_worker(), stream.start_worker()]
            for worker in joining:
                worker.wait_until_consuming()
            exit_codes = [worker.terminate() for worker in joining]
            notes = [f"2 workers joined and left with exit codes {exit_codes}"]
            return stream.finish(first, notes=notes)

    return run


def graceful_shutdown(context: ChaosContext, count: int, stops: int = 3) -> Outcome:
    """SIGTERM the worker mid-stream several times; each stop must repeat nothing."""
    settings = context.settings("graceful", "at_least_once")
    events = sms_events(count)
    seconds = STREAM_SECONDS_PER_START * (stops + 1)
    with _Stream(context, settings, events, "graceful_shutdown", seconds) as stream:
        worker = stream.start_worker()
        exit_codes = []
        for _ in range(stops):
            worker.wait_until_consuming()
            time.sleep(random.uniform(0.3, 1.5))  # noqa: S311 - chaos timing, not secrets
            exit_codes.append(worker.terminate())
            worker = stream.start_worker()
        return stream.finish(worker, notes=[f"{stops} SIGTERMs, exit codes {exit_codes}"])


def poison_mix(context: ChaosContext, count: int) -> Outcome:
    """Send every kind of malformed event, spread among good ones, as one backlog."""
    settings = context.settings("poison", "at_least_once", worker={"max_event_bytes": 20_000})
    scorer = Scorer.from_registry(context.model_uri, context.tracking_uri, 20_000)
    generator = EventGenerator(scorer.contract, count - 1, invalid_fraction=0.2, seed=7)
    events = [(event_id.encode(), value) for event_id, value, _ in generator]
    # Larger than max_event_bytes, the one kind the generator leaves to the worker's settings.
    events.append(
        (
            b"poison-oversized",
            b'{"event_id": "poison-oversized", "message": "' + b"x" * 30_000 + b'"}',
        )
    )
    invalid = int((count - 1) * 0.2) + 1
    with _Stream(context, settings, events, "poison_mix", seconds=0.0) as stream:
        worker = stream.start_worker()
        outcome = stream.finish(worker, notes=[])
    kinds = ", ".join(kind.value for kind in INVALID_KINDS)
    outcome.notes.append(f"{invalid} malformed events of the kinds {kinds}")
    if outcome.dead_lettered != invalid:
        outcome.notes.append(f"expected {invalid} dead-lettered, got {outcome.dead_lettered}")
    return outcome


def broker_outage(context: ChaosContext, count: int, outage_s: float = 20.0) -> Outcome:
    """Take the broker away when the worker starts, and again for `outage_s` mid-stream.

    Runs on a private embedded broker behind a proxy: stopping the broker itself would lose its
    in-memory topics.
    """
    proxy_port = free_port()
    broker = EmbeddedBroker(
        "127.0.0.1", free_port(), context.run_dir / "outage-broker", advertised_port=proxy_port
    )
    proxy = BrokerProxy(proxy_port, broker.port)
    broker.start()
    proxy.restore()
    worker: WorkerProcess | None = None
    try:
        outage_context = ChaosContext(
            f"127.0.0.1:{proxy_port}", context.tracking_uri, context.run_dir, context.model_uri
        )
        settings = outage_context.settings("outage", "at_least_once")
        events = sms_events(count)
        keys = {key for key, _ in events}
        started = time.monotonic()
        proxy.cut()
        worker = WorkerProcess(settings, context.run_dir / "logs", "broker_outage-0")
        ready_at_start = _readiness_after(worker, 8.0)  # starts while the broker is unreachable
        proxy.restore()
        producer = PacedProducer(settings, events, count / (outage_s + STREAM_SECONDS_PER_START))
        producer.start()
        worker.wait_until_consuming()
        time.sleep(2.0)
        proxy.cut()
        ready_mid_stream = _readiness_after(worker, outage_s)
        proxy.restore()
        producer.finish()
        tally = Tally(settings)
        try:
            tally.wait_for(keys, CATCH_UP_S)
            ready_after = worker.readiness()
            exit_code = worker.terminate()
            tally.read(2.0)
        finally:
            tally.close()
        notes = [
            f"/readyz while the broker was away at start: {ready_at_start}, "
            f"during the {outage_s:g} s outage: {ready_mid_stream}, after: {ready_after}",
            f"worker exit code {exit_code}",
        ]
        seconds = time.monotonic() - started
        return tally.outcome("broker_outage", "at_least_once", keys, seconds, notes)
    finally:
        if worker is not None and worker.is_running:
            worker.kill()
        proxy.close()
        broker.stop()


def _readiness_after(worker: WorkerProcess, seconds: float) -> int | None:
    """Wait `seconds`, then return the worker's /readyz status code."""
    time.sleep(seconds)
    return worker.readiness()


@dataclass
class _SleepingScorer(Scorer):
    """The real model, made slower: it sleeps before every batch, in proportion to its size."""

    seconds_per_event: float = 0.02

    def _predict_proba(self, events: list[Event]) -> np.ndarray:
        time.sleep(self.seconds_per_event * len(events))
        return super()._predict_proba(events)


def slow_model(context: ChaosContext, count: int) -> Outcome:
    """Score a backlog with a model far slower than max.poll.interval.ms allows for a full batch.

    At 20 ms per event a batch of 2,000 would take 40 s. The worker must bound its batches to
    stay within a 6 s max.poll.interval.ms, or it falls out of the group.
    """
    settings = context.settings(
        "slow", "at_least_once", kafka={"max_poll_interval_ms": 6_000}, worker={"batch_size": 2_000}
    )
    loaded = Scorer.from_registry(context.model_uri, context.tracking_uri, 100_000)
    scorer = _SleepingScorer(**{f.name: getattr(loaded, f.name) for f in fields(loaded)})
    events = sms_events(count)
    keys = {key for key, _ in events}
    publish(settings, events)
    lost_partitions = _LogCounter("stream.worker", "partitions lost")
    started = time.monotonic()
    metrics = WorkerMetrics(CollectorRegistry())
    worker = Worker(settings, scorer, metrics)
    thread = threading.Thread(target=worker.run, name="slow-worker", daemon=True)
    thread.start()
    tally = Tally(settings)
    try:
        tally.wait_for(keys, CATCH_UP_S + count * scorer.seconds_per_event)
    finally:
        worker.request_stop()
        thread.join(60)
        tally.read(1.0)
        tally.close()
        lost_partitions.close()
    notes = [
        f"20 ms per event, max.poll.interval.ms 6000; partitions lost {lost_partitions.count} times"
    ]
    return tally.outcome("slow_model", "at_least_once", keys, time.monotonic() - started, notes)


class _LogCounter(logging.Handler):
    """Count the records of one logger whose message starts with `prefix`."""

    def __init__(self, logger_name: str, prefix: str) -> None:
        super().__init__()
        self._logger = logging.getLogger(logger_name)
        self._prefix = prefix
        self.count = 0
        self._logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        """Count a matching record."""
        if record.getMessage().startswith(self._prefix):
            self.count += 1

    def close(self) -> None:
        """Stop counting."""
        self._logger.removeHandler(self)
        super().close()


class _Stream:
    """A paced stream into one scenario's topics, the workers it starts, and the tally."""

    def __init__(
        self,
        context: ChaosContext,
        settings: Settings,
        events: list[tuple[bytes, bytes]],
        name: str,
        seconds: float,
    ) -> None:
        self._context = context
        self._settings = settings
        self._name = name
        self._keys = {key for key, _ in events}
        rate = len(events) / seconds if seconds else float("inf")
        self._producer = PacedProducer(settings, events, rate)
        self._workers: list[WorkerProcess] = []
        self._started = 0.0

    def __enter__(self) -> _Stream:
        self._started = time.monotonic()
        self._producer.start()
        return self

    def __exit__(self, *_: object) -> None:
        for worker in self._workers:
            if worker.is_running:
                worker.kill()

    def start_worker(self) -> WorkerProcess:
        """Start one more worker process in the scenario's group."""
        name = f"{self._name}-{len(self._workers)}"
        worker = WorkerProcess(self._settings, self._context.run_dir / "logs", name)
        self._workers.append(worker)
        return worker

    def finish(self, worker: WorkerProcess, notes: list[str]) -> Outcome:
        """Wait until every event has a record, stop `worker` gracefully and tally the topics."""
        self._producer.finish()
        tally = Tally(self._settings)
        try:
            tally.wait_for(self._keys, CATCH_UP_S)
            still_running = worker.is_running
            exit_code = worker.terminate()
            tally.read(2.0)
        finally:
            tally.close()
        if not still_running:
            notes.append(f"the worker had exited with {exit_code} before the end")
        guarantee = self._settings.worker.processing_guarantee
        seconds = time.monotonic() - self._started
        return tally.outcome(self._name.split("-")[0], guarantee, self._keys, seconds, notes)


def all_scenarios() -> list[tuple[str, str, Scenario]]:
    """Return (name, guarantee, run) for every scenario of the report, in report order."""
    return [
        ("sigkill", "at_least_once", sigkill("at_least_once")),
        ("sigkill", "exactly_once", sigkill("exactly_once")),
        ("rebalance", "at_least_once", rebalance("at_least_once")),
        ("rebalance", "exactly_once", rebalance("exactly_once")),
        ("broker_outage", "at_least_once", broker_outage),
        ("slow_model", "at_least_once", slow_model),
        ("poison_mix", "at_least_once", poison_mix),
        ("graceful_shutdown", "at_least_once", graceful_shutdown),
    ]
