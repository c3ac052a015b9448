"""The `streamscore train` command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    # streamscore.cli imports this module while it registers its commands, so importing it at
    # run time here would be circular.
    from streamscore.cli import CliContext
    from trainer.train import TrainingResult


def _parse_minimums(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, float]:
    """Parse repeated NAME=VALUE options into a mapping of metric minimums."""
    minimums: dict[str, float] = {}
    for value in values:
        name, separator, number = value.partition("=")
        try:
            minimums[name.strip()] = float(number)
        except ValueError:
            separator = ""
        if not separator:
            raise click.BadParameter(f"expected NAME=NUMBER such as f1=0.8, got {value!r}")
    return minimums


# Stages that `trainer.train.train` reports: read, split, fit, evaluate, log, register.
TRAINING_STAGES = 6


@click.command()
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Labelled TSV or CSV file (sets training.data_path).",
)
@click.option(
    "--min-metric",
    "min_metrics",
    multiple=True,
    callback=_parse_minimums,
    metavar="NAME=VALUE",
    help="Minimum held-out metric, from 0 to 1, for the alias to move, e.g. f1=0.8; repeatable "
    "(sets training.min_metrics.NAME).",
)
@click.option("--alias", help="Alias to move to the new version (sets training.alias).")
@click.pass_obj
def train(
    cli_context: CliContext,
    data_path: Path | None,
    min_metrics: dict[str, float],
    alias: str | None,
) -> None:
    """Train the configured model, register a new version and move the alias if it passes.

    The alias moves only when every metric in training.min_metrics reaches its minimum and the
    training.gate_metric is not lower than the current champion's on the same held-out rows. A
    version that fails the gate is still registered and the command exits 0.
    Progress goes to stderr, one line per stage.

    \b
    Example:
      streamscore train --data data/sms_spam_collection.tsv --min-metric f1=0.85
    """
    from trainer.train import train as run_training

    # Sources are merged key by key, so these minimums replace only the metrics they name.
    overrides: dict[str, Any] = {
        "data_path": data_path,
        "alias": alias,
        "min_metrics": min_metrics or None,
    }
    settings = cli_context.settings(
        training={key: value for key, value in overrides.items() if value is not None}
    )
    # MLflow prints run and experiment links to stdout after a run on a tracking server. The
    # run id is printed below instead.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

    with cli_context.progress("train", total=TRAINING_STAGES, unit="steps") as progress:
        result = run_training(settings, on_step=progress.stage)
    _print_result(result)


def _print_result(result: TrainingResult) -> None:
    click.echo(f"registered model {result.model_name} version {result.version}")
    click.echo(f"run {result.run_id}")
    for name, value in result.metrics.items():
        click.echo(f"  {name:<10} {value:.4f}")

    click.echo(result.gate.describe())
    if result.alias_move is not None:
        click.echo(result.alias_move.describe())
    elif result.previous_alias_version is None:
        click.echo(f"alias {result.alias}: not set")
    else:
        click.echo(f"alias {result.alias}: stays on version {result.previous_alias_version}")
