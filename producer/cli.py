"""The `streamscore publish` command."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from producer import publisher
from producer.reader import FORMATS, count_rows, read_rows
from streamscore.errors import StreamscoreError
from streamscore.kafka import check_broker, check_client_properties

if TYPE_CHECKING:
    from producer.generate import EventGenerator
    from streamscore.cli import CliContext
    from streamscore.progress import Progress
    from streamscore.settings import Settings


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
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False), required=False)
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
@click.option(
    "--generate",
    "generate_count",
    type=click.IntRange(min=1),
    help="Publish N generated events that fit the model's input signature, instead of FILE.",
)
@click.option(
    "--invalid-fraction",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="With --generate: share of malformed events, from 0 to 1, to exercise the dead-letter "
    "topic.",
)
@click.option(
    "--model-uri",
    help="With --generate: model whose signature the events fit (default: model.uri).",
)
@click.option("--seed", type=int, help="With --generate: random seed, for repeatable load.")
@click.pass_obj
def publish(
    cli_context: CliContext,
    file: Path | None,
    columns: list[str] | None,
    fields: list[str] | None,
    id_field: str | None,
    limit: int | None,
    rate: float | None,
    topic: str | None,
    file_format: str | None,
    generate_count: int | None,
    invalid_fraction: float,
    model_uri: str | None,
    seed: int | None,
) -> None:
    """Publish each row of FILE as one event on the input topic, or generated events.

    Progress goes to stderr: a bar on a terminal, a line every 5 s or 10% otherwise.

    \b
    Examples:
      streamscore publish data/sms_spam_collection.tsv --columns label,message --fields message
      streamscore publish --generate 10000 --rate 500
      streamscore publish --generate 100 --invalid-fraction 0.1
    """
    _check_source(file, generate_count, columns, fields, id_field, file_format, invalid_fraction)
    settings = cli_context.settings(**({"model": {"uri": model_uri}} if model_uri else {}))
    check_client_properties(settings.kafka)

    if generate_count is not None:
        events = _generated_events(
            settings, generate_count, invalid_fraction, seed, quiet=cli_context.quiet
        )
        total = min(generate_count, limit or generate_count)
    else:
        assert file is not None  # noqa: S101 - _check_source requires FILE without --generate
        has_header = columns is None
        total = count_rows(file, file_format=file_format, has_header=has_header)
        total = min(total, limit or total)
        # The reader checks, with line numbers, that every row has the fields the events need.
        required = [*(fields or []), *([id_field] if id_field else [])]
        rows = read_rows(file, file_format=file_format, columns=columns, fields=required)
    check_broker(settings.kafka)

    with cli_context.progress("publish", total) as progress:
        on_published = _advance(progress)
        if generate_count is not None:
            report = publisher.publish_encoded(
                settings, events, limit=limit, rate=rate, topic=topic, on_published=on_published
            )
        else:
            report = publisher.publish(
                settings,
                rows,
                fields=fields,
                id_field=id_field,
                limit=limit,
                rate=rate,
                topic=topic,
                on_published=on_published,
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


def _check_source(
    file: Path | None,
    generate_count: int | None,
    columns: list[str] | None,
    fields: list[str] | None,
    id_field: str | None,
    file_format: str | None,
    invalid_fraction: float,
) -> None:
    """Reject a missing FILE, FILE with --generate, and options that do not fit the source."""
    if file is None and generate_count is None:
        raise click.UsageError("missing FILE: give a file to publish, or --generate N")
    if file is not None and generate_count is not None:
        raise click.UsageError("give either FILE or --generate N, not both")
    file_options = {
        "--columns": columns,
        "--fields": fields,
        "--id-field": id_field,
        "--format": file_format,
    }
    if generate_count is not None:
        given = [name for name, value in file_options.items() if value is not None]
        if given:
            raise click.UsageError(f"{given[0]} applies to FILE, not to --generate")
    elif invalid_fraction > 0:
        raise click.UsageError("--invalid-fraction applies to --generate only")


def _generated_events(
    settings: Settings, count: int, invalid_fraction: float, seed: int | None, *, quiet: bool
) -> EventGenerator:
    """Load the model's input contract and build the generator of its events."""
    from producer.generate import EventGenerator, read_training_texts
    from stream.scorer import Scorer

    scorer = Scorer.from_registry(
        settings.model.uri, settings.model.tracking_uri, settings.worker.max_event_bytes
    )
    training = settings.training
    text_fields = [
        spec.name
        for spec in scorer.contract.fields
        if spec.type == "string" and spec.name == training.text_column
    ]
    texts = read_training_texts(training) if text_fields else []
    if not quiet:
        click.echo(
            f"generating {count} events for model {scorer.name} version {scorer.version}, "
            f"fields {', '.join(scorer.contract.names)}",
            err=True,
        )
    return EventGenerator(
        scorer.contract,
        count,
        texts=texts,
        text_field=training.text_column if text_fields else None,
        invalid_fraction=invalid_fraction,
        seed=seed,
    )


def _advance(progress: Progress) -> publisher.OnPublished:
    def on_published(event_id: str, row: Mapping[str, Any]) -> None:
        progress.advance()

    return on_published
