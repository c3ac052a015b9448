"""The `streamscore` command: one group, one subcommand per job.

Each package registers its own subcommand; heavy imports (MLflow, scikit-learn) happen inside the
commands so that `--help` stays fast.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from streamscore import __version__
from streamscore.errors import ConfigError, StreamscoreError
from streamscore.logs import configure_logging
from streamscore.progress import Progress
from streamscore.settings import Settings, load_settings

# Exit codes: 2 is click's own code for usage errors; config errors share it.
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


@dataclass
class CliContext:
    """Options of the `streamscore` group, read by every subcommand."""

    config_file: Path | None
    debug: bool
    quiet: bool = False

    def settings(self, **overrides: Any) -> Settings:
        """Load settings once per command and configure logging from them.

        With `--quiet`, INFO records are dropped whatever `logging.level` says.
        """
        settings = load_settings(self.config_file, **overrides)
        logging_settings = settings.logging
        if self.quiet and logging_settings.level in ("DEBUG", "INFO"):
            logging_settings = logging_settings.model_copy(update={"level": "WARNING"})
        configure_logging(logging_settings)
        return settings

    def progress(
        self, description: str, total: int | None = None, unit: str = "events"
    ) -> Progress:
        """Create the progress report of a long task, silent with `--quiet`."""
        return Progress(description, total, unit=unit, quiet=self.quiet)


pass_cli = click.make_pass_decorator(CliContext)


class _Group(click.Group):
    """Click group that turns streamscore errors into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            _fail(ctx, f"invalid config: {exc}", EXIT_USAGE)
        except StreamscoreError as exc:
            _fail(ctx, str(exc), EXIT_FAILURE)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


def _fail(ctx: click.Context, message: str, code: int) -> None:
    obj = ctx.find_object(CliContext)
    if obj is not None and obj.debug:
        raise
    for line in message.splitlines():
        click.echo(f"error: {line}", err=True)
    ctx.exit(code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="STREAMSCORE_CONFIG",
    help="YAML settings file (default: config/default.yaml).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="Print no progress and no INFO logs, only output and errors.",
)
@click.version_option(__version__, prog_name="streamscore")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None, debug: bool, quiet: bool) -> None:
    """Score Kafka events with a scikit-learn model from the MLflow registry.

    \b
    Quick start:
      streamscore broker start
      streamscore train
      streamscore worker &
      streamscore publish data/sms_spam_collection.tsv --columns label,message --fields message
      streamscore results

    \b
    Shell completion (bash; zsh and fish work the same way):
      eval "$(_STREAMSCORE_COMPLETE=bash_source streamscore)"
    """
    ctx.obj = CliContext(config_file, debug, quiet)


def _register_commands() -> None:
    from producer.cli import publish
    from stream.cli import score_file, worker
    from streamscore.broker_cli import broker
    from streamscore.dead_letters import dead_letters
    from streamscore.demo import demo
    from streamscore.results import results
    from streamscore.status import status
    from trainer.cli import train
    from trainer.registry_cli import promote, rollback

    for command in (
        broker, train, promote, rollback, worker, score_file, publish, status, results,
        dead_letters, demo,
    ):  # fmt: skip
        cli.add_command(command)


_register_commands()


def main(args: list[str] | None = None) -> None:
    """Run the `streamscore` command line."""
    cli.main(args=args if args is not None else sys.argv[1:], prog_name="streamscore")


def run_subcommand(name: str, args: list[str] | None = None) -> None:
    """Run one subcommand as `python -m PACKAGE` does, accepting the group's options too.

    `python -m stream --config FILE --batch-size 10` becomes
    `streamscore --config FILE worker --batch-size 10`.
    """
    group_args: list[str] = []
    command_args: list[str] = []
    remaining = iter(sys.argv[1:] if args is None else args)
    for arg in remaining:
        if arg == "--config":
            group_args += [arg, next(remaining, "")]
        elif arg.startswith("--config=") or arg in ("--debug", "--quiet", "-q"):
            group_args.append(arg)
        else:
            command_args.append(arg)
    main([*group_args, name, *command_args])
