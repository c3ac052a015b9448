"""The `streamscore publish` command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from producer import publisher
from producer.reader import FORMATS, read_rows
from streamscore.errors import StreamscoreError

if TYPE_CHECKING:
    from streamscore.cli import CliContext


def _split_names(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    """Parse a comma-separated list of names, rejecting empty and repeated names."""
    if value is None:
        return None
    names = [name.strip() for name in value.split(",")]
    if any(not name for name in names):
        raise click.BadParameter(f"expected comma-separated names, got {value!r}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise click.BadParameter(f"{repeated[0]!r} appears twice in {value!r}")
    return names


@click.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--columns",
    callback=_split_names,
    help="Column names, comma-separated, for a CSV or TSV file without a header line.",
)
@click.option(
    "--fields",
    callback=_split_names,
    help="Fields to copy into each event, comma-separated (default: all).",
)
@click.option("--id-field", help="Field that contains the event id (default: a new random id).")
@click.option("--limit", type=click.IntRange(min=1), help="Publish at most N rows.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Events per second (default: as fast as the broker accepts them).",
)
@click.option("--topic", help="Topic to publish to (default: topics.input from the settings).")
@click.option(
    "--format",
    "file_format",
    type=click.Choice(FORMATS),
    help="File format (default: from the extension .tsv, .csv or .jsonl).",
)
@click.pass_obj
def publish(
    cli_context: CliContext,
    file: Path,
    columns: list[str] | None,
    fields: list[str] | None,
    id_field: str | None,
    limit: int | None,
    rate: float | None,
    topic: str | None,
    file_format: str | None,
) -> None:
    """Publish each row of FILE as one event on the input topic."""
    settings = cli_context.settings()
    # The reader checks, with line numbers, that every row has the fields the events need.
    required = [*(fields or []), *([id_field] if id_field else [])]
    rows = read_rows(file, file_format=file_format, columns=columns, fields=required)

    report = publisher.publish(
        settings, rows, fields=fields, id_field=id_field, limit=limit, rate=rate, topic=topic
    )

    click.echo(
        f"published {report.delivered} events to {report.topic} in {report.elapsed_s:.2f} s "
        f"({report.events_per_s:.0f} events/s), {report.failed} failed"
    )
    if report.failed:
        raise StreamscoreError(
            f"{report.failed} of {report.sent} events were not delivered to "
            f"{settings.kafka.bootstrap_servers}; the log shows the first delivery error"
        )
