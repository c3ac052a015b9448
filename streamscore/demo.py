"""The `streamscore demo` command: the whole job on the SMS data, end to end, on one machine.

It starts the embedded broker on a free port, trains and registers the model, starts a worker
process, publishes every message, waits for one result per event, prints a summary and stops
everything it started, also when interrupted.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streamscore.broker import EmbeddedBroker, free_port
from streamscore.errors import StreamscoreError
from streamscore.kafka import reader_config
from streamscore.logs import configure_logging
from streamscore.settings import Settings

if TYPE_CHECKING:
    from streamscore.cli import CliContext

# Seconds to wait for the worker to load the model and join the group.
_WORKER_READY_TIMEOUT_S = 120.0
# Seconds a stopped worker gets to finish its batch, commit and leave the group.
_WORKER_STOP_TIMEOUT_S = 30.0


class DemoError(StreamscoreError):
    """A step of the demo failed."""


@dataclass
class Collected:
    """Results per event id, duplicate and dead-letter counts read back by the demo."""

    labels: dict[str, str] = field(default_factory=dict)
    duplicates: int = 0
    dead_lettered: int = 0
    last_result_at: float = 0.0


@click.command()
@click.option("--limit", type=click.IntRange(min=1), help="Publish only the first N messages.")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Seconds to wait for all results after publishing.",
)
@click.pass_obj
def demo(cli_context: CliContext, limit: int | None, timeout_s: float) -> None:
    """Run broker, trainer, worker and producer on the SMS data and print a summary.

    Exits 0 only if every published event got exactly one result.

    \b
    Example:
      streamscore demo --limit 500
    """
    port = free_port()
    settings = cli_context.settings(
        kafka={"bootstrap_servers": f"127.0.0.1:{port}"},
        worker={"group_id": f"demo-{uuid.uuid4().hex[:8]}"},
        metrics={"port": free_port()},
    )
    if not cli_context.debug:
        # The steps and the summary tell the story; the parts' INFO lines go to the worker log.
        configure_logging(settings.logging.model_copy(update={"level": "WARNING"}))
        logging.getLogger("mlflow").setLevel(logging.WARNING)
    run_dir = settings.state_dir / "demo"
    broker = EmbeddedBroker("127.0.0.1", port, run_dir)
    worker: subprocess.Popen[bytes] | None = None
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    try:
        _step(f"starting the embedded broker on {broker.address}")
        # Broker and worker run in their own sessions: Ctrl-C reaches the demo alone, which
        # then stops them in order, so that the publisher can still flush.
        broker.start(detach=True)
        _train(settings)
        worker = _start_worker(settings, cli_context.config_file, run_dir / "worker.log")
        _wait_until_ready(settings, worker, run_dir / "worker.log")
        published, started = _publish(settings, limit)
        collected = _collect(settings, published, timeout_s)
        metrics_text = _scrape(settings)
        exit_code = _stop_worker(worker)
        worker = None
        is_complete = _summarise(settings, published, collected, started, metrics_text, exit_code)
    finally:
        if worker is not None:
            _stop_quietly(worker)
        broker.stop()
        signal.signal(signal.SIGTERM, previous_handler)
    if not is_complete:
        raise DemoError("not every published event got exactly one result; see the summary")


def _interrupt(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt


def _step(text: str) -> None:
    click.secho(f"==> {text}", bold=True)


def _train(settings: Settings) -> None:
    from trainer.train import train

    _step(f"training on {settings.training.data_path} and registering the model")
    result = train(settings)
    metrics = ", ".join(f"{name} {value:.4f}" for name, value in sorted(result.metrics.items()))
    click.echo(f"    {result.model_name} version {result.version}: {metrics}")
    if not result.alias_moved:
        click.echo(f"    alias {result.alias} stays on version {result.previous_alias_version}")


def _start_worker(
    settings: Settings, config_file: Path | None, log_path: Path
) -> subprocess.Popen[bytes]:
    _step(f"starting a worker (log {log_path})")
    environment = dict(os.environ)
    environment["STREAMSCORE_KAFKA__BOOTSTRAP_SERVERS"] = settings.kafka.bootstrap_servers
    environment["STREAMSCORE_WORKER__GROUP_ID"] = settings.worker.group_id
    environment["STREAMSCORE_METRICS__PORT"] = str(settings.metrics.port)
    if config_file is not None:
        environment["STREAMSCORE_CONFIG"] = str(config_file)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        return subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-m", "stream"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )


def _wait_until_ready(settings: Settings, worker: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + _WORKER_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise DemoError(f"the worker exited with code {worker.returncode}: " + " | ".join(tail))
        if _metric(_scrape(settings), "streamscore_assigned_partitions") > 0:
            return
        time.sleep(0.2)
    raise DemoError(f"the worker did not join the group within {_WORKER_READY_TIMEOUT_S:g} s")


def _publish(settings: Settings, limit: int | None) -> tuple[dict[str, str], float]:
    from producer.publisher import publish
    from producer.reader import read_rows

    training = settings.training
    _step(f"publishing {training.data_path} to {settings.topics.input}")
    truth: dict[str, str] = {}

    def remember(event_id: str, row: Any) -> None:
        truth[event_id] = row[training.label_column]

    rows = read_rows(training.data_path, columns=training.columns)
    started = time.monotonic()
    report = publish(
        settings, rows, fields=[training.text_column], limit=limit, on_published=remember
    )
    click.echo(f"    {report.delivered} delivered, {report.failed} failed")
    if report.failed:
        raise DemoError(f"{report.failed} events could not be published")
    return truth, started


def _collect(settings: Settings, published: dict[str, str], timeout_s: float) -> Collected:
    """Read results and dead letters until every published event is accounted for."""
    _step(f"waiting for {len(published)} results on {settings.topics.output}")
    collected = Collected()
    consumer = Consumer(reader_config(settings.kafka))
    topics = (settings.topics.output, settings.topics.dead_letter)
    consumer.assign(
        [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in _partitions(consumer, t)]
    )
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if len(collected.labels) + collected.dead_lettered >= len(published):
                break
            for message in consumer.consume(1_000, 0.2):
                if message.error() is not None:
                    continue
                if message.topic() == settings.topics.dead_letter:
                    collected.dead_lettered += 1
                    continue
                event_id, label = _event_id_and_label(message.value())
                if event_id in collected.labels:
                    collected.duplicates += 1
                collected.labels[event_id] = label
                collected.last_result_at = time.monotonic()
    finally:
        consumer.close()
    return collected


def _event_id_and_label(value: bytes | None) -> tuple[str, str]:
    try:
        result = orjson.loads(value or b"")
        return str(result["event_id"]), str(result["label"])
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise DemoError(f"the output topic has a message that is not a result: {exc}") from exc


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    metadata = consumer.list_topics(topic, timeout=10)
    return sorted(metadata.topics[topic].partitions)


def _scrape(settings: Settings) -> str:
    url = f"http://127.0.0.1:{settings.metrics.port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback http
            return str(response.read().decode())
    except OSError:
        return ""


def _metric(metrics_text: str, name: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _stop_quietly(worker: subprocess.Popen[bytes]) -> None:
    """Stop a worker left running by an error or an interrupt: SIGTERM, then SIGKILL."""
    if worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=_WORKER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def _stop_worker(worker: subprocess.Popen[bytes]) -> int:
    _step("stopping the worker (SIGTERM: finish the batch, commit, leave the group)")
    worker.send_signal(signal.SIGTERM)
    try:
        return worker.wait(timeout=_WORKER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
        raise DemoError(f"the worker did not stop within {_WORKER_STOP_TIMEOUT_S:g} s") from None


def _summarise(
    settings: Settings,
    published: dict[str, str],
    collected: Collected,
    started: float,
    metrics_text: str,
    worker_exit_code: int,
) -> bool:
    """Print the summary; return whether every event got exactly one result."""
    missing = len(set(published) - set(collected.labels))
    correct = sum(
        1 for event_id, label in collected.labels.items() if published.get(event_id) == label
    )
    elapsed_s = max(collected.last_result_at - started, 1e-9)
    by_label = Counter(collected.labels.values())
    rows = [
        ("events published", f"{len(published)}"),
        ("results received", f"{len(collected.labels)}"),
        ("duplicate results", f"{collected.duplicates}"),
        ("missing results", f"{missing}"),
        ("dead-lettered", f"{collected.dead_lettered}"),
        ("predicted labels", ", ".join(f"{k} {v}" for k, v in sorted(by_label.items()))),
        ("accuracy vs dataset labels", f"{correct / max(len(collected.labels), 1):.4f}"),
        (
            "throughput",
            f"{len(collected.labels) / elapsed_s:,.0f} events/s "
            f"(publish start to last result, {elapsed_s:.1f} s)",
        ),
        ("worker exit code", f"{worker_exit_code}"),
        (
            "metrics",
            f"http://127.0.0.1:{settings.metrics.port}/metrics (served while the worker ran)",
        ),
        (
            "events consumed (metric)",
            f"{_metric(metrics_text, 'streamscore_events_consumed_total'):.0f}",
        ),
    ]
    _step("summary")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"    {name:<{width}}  {value}")
    is_complete = missing == 0 and collected.duplicates == 0 and worker_exit_code == 0
    is_complete = is_complete and len(collected.labels) == len(published)
    click.secho("    OK: one result per event" if is_complete else "    FAILED", bold=True)
    return is_complete
