"""Read results from the output topic, and the `streamscore results` command that prints them."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import click
import orjson
from confluent_kafka import Message

from streamscore.kafka import check_broker
from streamscore.settings import Settings
from streamscore.topic_reader import read_messages

if TYPE_CHECKING:
    from streamscore.cli import CliContext

# Keys every result carries. A message without them is reported as invalid.
_REQUIRED_KEYS = ("event_id", "label")

# Percentiles of the latency in the closing summary.
LATENCY_PERCENTILES = (50, 95, 99)


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

    The arguments are those of `streamscore.topic_reader.read_messages`; `topic` defaults to
    `settings.topics.output`.

    Raises:
        StreamscoreError: the metadata request timed out or the topic does not exist.
    """
    messages = read_messages(
        settings,
        topic or settings.topics.output,
        from_beginning=from_beginning,
        follow=follow,
        limit=limit,
        timeout_s=timeout_s,
    )
    for message in messages:
        yield _decode(message)


def _decode(message: Message) -> ResultMessage:
    """Decode one consumed message of the output topic."""
    partition, offset, value = (
        cast(int, message.partition()),
        cast(int, message.offset()),
        message.value(),
    )

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


def latency_s(result: dict[str, Any]) -> float | None:
    """Return `scored_at` minus `event_time` in seconds, or None when either is missing."""
    try:
        scored_at = datetime.fromisoformat(result["scored_at"])
        event_time = datetime.fromisoformat(result["event_time"])
        return (scored_at - event_time).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def percentile(sorted_values: list[float], percent: float) -> float:
    """Return the nearest-rank percentile of a sorted, non-empty list."""
    rank = max(1, -(-len(sorted_values) * percent // 100))
    return sorted_values[int(rank) - 1]


def format_latency_summary(latencies: list[float]) -> str:
    """Format the latency percentiles, e.g. `latency p50 12 ms, p95 40 ms, p99 95 ms`."""
    if not latencies:
        return "latency: no result has both event_time and scored_at"
    ordered = sorted(latencies)
    parts = [f"p{p} {_format_duration(percentile(ordered, p))}" for p in LATENCY_PERCENTILES]
    return "latency " + ", ".join(parts)


def _format_duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if abs(seconds) < 10 else f"{seconds:.1f} s"


def wants_json(as_json: bool | None) -> bool:
    """Return whether to print JSON lines: as requested, else when stdout is not a terminal."""
    return as_json if as_json is not None else not sys.stdout.isatty()


@click.command()
@click.option(
    "--follow", is_flag=True, help="Keep printing new results until Ctrl-C; starts at the end."
)
@click.option(
    "--from-beginning",
    is_flag=True,
    help="With --follow: print the results already on the topic first.",
)
@click.option(
    "--json/--table",
    "as_json",
    default=None,
    help="Print JSON lines, or aligned columns (default: columns on a terminal, else JSON).",
)
@click.option(
    "--limit", type=click.IntRange(min=1), help="Stop after N messages, invalid ones included."
)
@click.option("--topic", help="Topic to read (default: topics.output from the settings).")
@click.pass_obj
def results(
    cli_context: CliContext,
    follow: bool,
    from_beginning: bool,
    as_json: bool | None,
    limit: int | None,
    topic: str | None,
) -> None:
    """Print the results on the output topic, then a count per label and latency percentiles.

    Without --follow, prints every result on the topic and stops. The latency of a result is
    its scored_at minus its event_time. The summary goes to stderr.

    \b
    Examples:
      streamscore results --limit 20
      streamscore results --follow
      streamscore results --json | jq -r .label
    """
    settings = cli_context.settings()
    check_broker(settings.kafka)
    is_json = wants_json(as_json)
    labels: Counter[str] = Counter()
    latencies: list[float] = []
    invalid = 0
    if not is_json:
        click.echo(_format_line("event_id", "label", "probability", "model_version", "latency"))
    messages = read_results(
        settings,
        topic=topic,
        from_beginning=from_beginning or not follow,
        follow=follow,
        limit=limit,
    )
    try:
        for message in messages:
            if message.result is None or message.value is None:
                invalid += 1
                click.echo(
                    f"warning: partition {message.partition} offset {message.offset}: "
                    f"not a result: {message.error}",
                    err=True,
                )
                continue
            labels[str(message.result["label"])] += 1
            latency = latency_s(message.result)
            if latency is not None:
                latencies.append(latency)
            # A valid result was valid JSON, so its value is valid UTF-8.
            click.echo(
                message.value.decode() if is_json else _format_result(message.result, latency)
            )
    except KeyboardInterrupt:
        # Ctrl-C is how `--follow` ends. Without `--follow`, an interruption is an error.
        if not follow:
            raise
    click.echo(_summary(labels, invalid), err=True)
    if labels:
        click.echo(format_latency_summary(latencies), err=True)


def _format_line(
    event_id: str, label: str, probability: str, model_version: str, latency: str
) -> str:
    return f"{event_id:<32}  {label:<8}  {probability:>11}  {model_version:>13}  {latency:>9}"


def printable(value: Any) -> str:
    """Return `value` as text whose control characters are escaped, safe to print on a terminal.

    Event ids come from the publishers of events. Printed raw, an escape sequence in one could
    retitle or recolour the reader's terminal.
    """
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _format_result(result: dict[str, Any], latency: float | None) -> str:
    probability = result.get("probability")
    return _format_line(
        printable(result["event_id"]),
        printable(result["label"]),
        f"{probability:.4f}" if isinstance(probability, int | float) else "-",
        printable(result.get("model_version", "-")),
        _format_duration(latency) if latency is not None else "-",
    )


def _summary(labels: Counter[str], invalid: int) -> str:
    total = sum(labels.values())
    summary = f"{total} result" + ("" if total == 1 else "s")
    if labels:
        summary += ": " + ", ".join(f"{label} {labels[label]}" for label in sorted(labels))
    if invalid:
        summary += f"; {invalid} invalid message" + ("" if invalid == 1 else "s") + " skipped"
    return summary
