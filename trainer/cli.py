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


# Stages that `trainer.train.train` reports: read, split, fit, evaluate, log, register.
TRAINING_STAGES = 6


@click.command()
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Labelled TSV or CSV file without a header line (sets training.data_path).",
)
@click.option(
    "--min-f1",
    type=float,
    help="Minimum held-out F1, from 0 to 1, for the alias to move (sets training.min_f1).",
)
@click.option("--alias", help="Alias to move to the new version (sets training.alias).")
@click.pass_obj
def train(
    cli_context: CliContext, data_path: Path | None, min_f1: float | None, alias: str | None
) -> None:
    """Train the spam model, register a new version and move the alias if it passes the gate.

    The alias moves only when the held-out F1 is at least min_f1. A version that fails the gate is
    still registered and the command exits 0. Progress goes to stderr, one line per stage.

    \b
    Example:
      streamscore train --data data/sms_spam_collection.tsv --min-f1 0.85
    """
    from trainer.train import train as run_training

    overrides: dict[str, Any] = {"data_path": data_path, "min_f1": min_f1, "alias": alias}
    settings = cli_context.settings(
        training={key: value for key, value in overrides.items() if value is not None}
    )
    # MLflow prints run and experiment links to stdout after a run on a tracking server. The
    # run id is printed below instead.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

    with cli_context.progress("train", total=TRAINING_STAGES, unit="steps") as progress:
        result = run_training(settings, on_step=progress.stage)
    _print_result(result, settings.training.min_f1)


def _print_result(result: TrainingResult, min_f1: float) -> None:
    click.echo(f"registered model {result.model_name} version {result.version}")
    click.echo(f"run {result.run_id}")
    for name, value in result.metrics.items():
        click.echo(f"  {name:<10} {value:.4f}")

    if result.alias_moved:
        click.echo(f"alias {result.alias} -> version {result.version}")
        return
    reason = f"f1 {result.metrics['f1']:.4f} < min_f1 {min_f1:.4f}"
    if result.previous_alias_version is None:
        click.echo(f"alias {result.alias} not moved: {reason}; the alias is not set")
    else:
        click.echo(
            f"alias {result.alias} not moved: {reason}; "
            f"it stays on version {result.previous_alias_version}"
        )
