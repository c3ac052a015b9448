"""The `streamscore promote` and `streamscore rollback` commands: move the serving alias by hand."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from streamscore.errors import StreamscoreError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from streamscore.cli import CliContext
    from trainer.aliases import AliasMove

_MODEL_HELP = "Registered model (default: training.registered_model)."
_ALIAS_HELP = "Alias to move (default: training.alias)."


@click.command()
@click.option(
    "--version",
    "version",
    type=click.IntRange(min=1),
    required=True,
    help="Model version to point the alias at.",
)
@click.option("--alias", help=_ALIAS_HELP)
@click.option("--model", "model_name", help=_MODEL_HELP)
@click.pass_obj
def promote(
    cli_context: CliContext, version: int, alias: str | None, model_name: str | None
) -> None:
    """Point the alias at model version VERSION, skipping the quality gate.

    Workers that follow the alias switch to that version. `streamscore rollback` undoes it.
    """
    from trainer import aliases

    def move(client: MlflowClient, name: str, alias: str) -> AliasMove:
        return aliases.promote(client, name, alias, version)

    _run_move(cli_context, model_name, alias, move)


@click.command()
@click.option("--alias", help=_ALIAS_HELP)
@click.option("--model", "model_name", help=_MODEL_HELP)
@click.pass_obj
def rollback(cli_context: CliContext, alias: str | None, model_name: str | None) -> None:
    """Point the alias back at the version it pointed at before its last promotion.

    Promotions by `streamscore train` and `streamscore promote` count. Each rollback goes one
    promotion further back, and fails when there is none left.
    """
    from trainer import aliases

    _run_move(cli_context, model_name, alias, aliases.rollback)


def _run_move(
    cli_context: CliContext,
    model_name: str | None,
    alias: str | None,
    move: Callable[[MlflowClient, str, str], AliasMove],
) -> None:
    """Load settings, run one alias move against the registry and print what moved."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    settings = cli_context.settings()
    name = model_name or settings.training.registered_model
    alias = alias or settings.training.alias
    tracking_uri = settings.model.tracking_uri
    # MLflow creates a missing SQLite file, and its directories, on first use. A promotion in
    # an empty store can only fail, so a wrong path is reported instead of created.
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0])
        if not database.is_file():
            raise StreamscoreError(
                f"MLflow store {database} not found: run `streamscore train` first, or set "
                f"model.tracking_uri to the store it used"
            )

    try:
        moved = move(
            MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri), name, alias
        )
    except MlflowException as exc:
        raise StreamscoreError(
            f"MLflow registry {tracking_uri} failed: {exc.message.splitlines()[0]}; "
            f"check model.tracking_uri"
        ) from exc

    click.echo(f"model {name} {moved.describe()}")
