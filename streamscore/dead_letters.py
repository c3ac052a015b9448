"""The `streamscore dead-letters` command: list dead-letter records and replay chosen ones."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import click
import orjson
from confluent_kafka import KafkaError, Message, Producer

from streamscore.errors import StreamscoreError
from streamscore.kafka import check_broker, producer_config
from streamscore.results import printable, wants_json
from streamscore.settings import Settings
from streamscore.topic_reader import read_messages

if TYPE_CHECKING:
    from streamscore.cli import CliContext

# Characters of a dead-letter message shown in a table row; JSON lines carry the whole message.
_MESSAGE_WIDTH = 60


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of the dead-letter topic: where it is, the original event, and the headers."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @classmethod
    def from_message(cls, message: Message) -> DeadLetter:
        """Build the record from a consumed message, decoding its headers as UTF-8."""
        # A consumed message's headers are a list of (name, value) pairs.
        pairs = cast(list[tuple[str, bytes | None]], message.headers() or [])
        headers = {name: _header_text(value) for name, value in pairs}
        return cls(
            cast(int, message.partition()),
            cast(int, message.offset()),
            message.key(),
            message.value(),
            headers,
        )

    @property
    def reason(self) -> str:
        """The `error.reason` header, or "-" when the record has none."""
        return self.headers.get("error.reason", "-")

    def to_json(self) -> dict[str, Any]:
        """Return the record as a JSON object; key and value are decoded with replacement."""
        return {
            "partition": self.partition,
            "offset": self.offset,
            "reason": self.reason,
            "message": self.headers.get("error.message"),
            "source_topic": self.headers.get("source.topic"),
            "source_partition": _int_or_none(self.headers.get("source.partition")),
            "source_offset": _int_or_none(self.headers.get("source.offset")),
            "key": _text(self.key),
            "value": _text(self.value),
        }


def _header_text(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value or ""


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


def _parse_positions(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> set[tuple[int, int]]:
    """Parse `PARTITION:OFFSET` values of the dead-letter topic."""
    positions = set()
    for value in values:
        partition, _, offset = value.partition(":")
        if not partition.isdigit() or not offset.isdigit():
            raise click.BadParameter(f"expected PARTITION:OFFSET, e.g. 0:12, got {value!r}")
        positions.add((int(partition), int(offset)))
    return positions


@click.command("dead-letters")
@click.option("--follow", is_flag=True, help="Keep printing new records until Ctrl-C.")
@click.option(
    "--from-beginning", is_flag=True, help="With --follow: print the records already there first."
)
@click.option(
    "--json/--table",
    "as_json",
    default=None,
    help="Print JSON lines, or aligned columns (default: columns on a terminal, else JSON).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Stop after N records.")
@click.option("--reason", "reasons", multiple=True, help="Select records with this reason.")
@click.option(
    "--offset",
    "positions",
    multiple=True,
    callback=_parse_positions,
    help="Select the record at PARTITION:OFFSET of the dead-letter topic; repeatable.",
)
@click.option("--all", "select_all", is_flag=True, help="With --replay: select every record.")
@click.option(
    "--replay",
    is_flag=True,
    help="Republish the selected records, key and value unchanged, to the input topic.",
)
@click.pass_obj
def dead_letters(
    cli_context: CliContext,
    follow: bool,
    from_beginning: bool,
    as_json: bool | None,
    limit: int | None,
    reasons: tuple[str, ...],
    positions: set[tuple[int, int]],
    select_all: bool,
    replay: bool,
) -> None:
    """Print the dead-letter records with their reasons, or replay chosen ones after a fix.

    --reason and --offset select records; without them every record is printed. --replay needs
    a selection (--reason, --offset or --all), so that nothing is republished by accident.

    \b
    Examples:
      streamscore dead-letters
      streamscore dead-letters --reason wrong_type --json
      streamscore dead-letters --replay --offset 0:12 --offset 1:3
      streamscore dead-letters --replay --reason scoring_failed
    """
    if replay and not (reasons or positions or select_all):
        raise click.UsageError("--replay needs a selection: --reason R, --offset P:O or --all")
    if replay and follow:
        raise click.UsageError("--replay reads the topic once; it cannot be used with --follow")
    settings = cli_context.settings()
    check_broker(settings.kafka)

    selected = _read_selected(settings, follow, from_beginning, limit, set(reasons), positions)
    if replay:
        _replay(settings, list(selected))
    else:
        _print(selected, wants_json(as_json), follow)


def _read_selected(
    settings: Settings,
    follow: bool,
    from_beginning: bool,
    limit: int | None,
    reasons: set[str],
    positions: set[tuple[int, int]],
) -> Iterator[DeadLetter]:
    messages = read_messages(
        settings,
        settings.topics.dead_letter,
        from_beginning=from_beginning or not follow,
        follow=follow,
    )
    count = 0
    for message in messages:
        record = DeadLetter.from_message(message)
        if reasons and record.reason not in reasons:
            continue
        if positions and (record.partition, record.offset) not in positions:
            continue
        yield record
        count += 1
        if limit is not None and count >= limit:
            return


def _print(records: Iterable[DeadLetter], is_json: bool, follow: bool) -> None:
    reasons: Counter[str] = Counter()
    if not is_json:
        click.echo(f"{'position':<10}  {'reason':<14}  {'key':<32}  message")
    try:
        for record in records:
            reasons[record.reason] += 1
            if is_json:
                click.echo(orjson.dumps(record.to_json()).decode())
                continue
            message = printable(record.headers.get("error.message", "-"))
            if len(message) > _MESSAGE_WIDTH:
                message = message[: _MESSAGE_WIDTH - 3] + "..."
            key = printable(_text(record.key) or "-")
            position = f"{record.partition}:{record.offset}"
            click.echo(f"{position:<10}  {record.reason:<14}  {key:<32}  {message}")
    except KeyboardInterrupt:
        if not follow:
            raise
    total = sum(reasons.values())
    summary = f"{total} dead-letter record" + ("" if total == 1 else "s")
    if reasons:
        summary += ": " + ", ".join(f"{reason} {reasons[reason]}" for reason in sorted(reasons))
    click.echo(summary, err=True)


def _replay(settings: Settings, records: list[DeadLetter]) -> None:
    """Produce each record's key and value to the input topic and wait for the delivery reports.

    Raises:
        StreamscoreError: a record was not delivered.
    """
    topic = settings.topics.input
    failures: list[str] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failures.append(error.str())

    producer = Producer(producer_config(settings.kafka))
    for record in records:
        producer.produce(topic, record.value, record.key, on_delivery=on_delivery)
        producer.poll(0)
        click.echo(f"replayed {record.partition}:{record.offset} ({record.reason}) to {topic}")
    remaining = producer.flush(settings.worker.flush_timeout_s)

    delivered = len(records) - len(failures) - remaining
    click.echo(f"replayed {delivered} of {len(records)} dead-letter records to {topic}")
    if failures or remaining:
        first = failures[0] if failures else "flush timed out"
        raise StreamscoreError(
            f"{len(records) - delivered} replayed records were not delivered ({first}); "
            f"run the replay again once the broker accepts writes"
        )
