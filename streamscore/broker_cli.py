"""The `streamscore broker` commands: start, stop and check the embedded broker."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from streamscore.broker import EmbeddedBroker, is_answering

if TYPE_CHECKING:
    from streamscore.cli import CliContext


@click.group()
def broker() -> None:
    """Run the embedded Kafka-protocol broker (Tansu, in memory) on loopback.

    It listens on the first address of kafka.bootstrap_servers. Topics live in memory only:
    stopping the broker deletes every event.

    \b
    Example:
      streamscore broker start && streamscore broker status
    """


@broker.command()
@click.pass_obj
def start(cli_context: CliContext) -> None:
    """Start the broker in the background and create the topics.

    \b
    Example:
      streamscore broker start
    """
    from streamscore.kafka import ensure_topics

    settings = cli_context.settings()
    embedded = EmbeddedBroker.from_bootstrap(settings.kafka.bootstrap_servers, settings.state_dir)
    pid = embedded.start(detach=True)
    ensure_topics(settings)
    topics = settings.topics
    click.echo(f"broker started on {embedded.address} (pid {pid}, log {embedded.log_file})")
    click.echo(
        f"topics {topics.input}, {topics.output}, {topics.dead_letter} "
        f"with {topics.partitions} partitions"
    )


@broker.command()
@click.pass_obj
def stop(cli_context: CliContext) -> None:
    """Stop the broker started by `streamscore broker start`.

    \b
    Example:
      streamscore broker stop
    """
    settings = cli_context.settings()
    embedded = EmbeddedBroker.from_bootstrap(settings.kafka.bootstrap_servers, settings.state_dir)
    if embedded.stop():
        click.echo(f"broker on {embedded.address} stopped")
    else:
        click.echo(f"no broker started here was running (pid file {embedded.pid_file})")


@broker.command()
@click.pass_obj
def status(cli_context: CliContext) -> None:
    """Report whether the broker runs and responds to metadata requests; exit 1 if not.

    \b
    Example:
      streamscore broker status || streamscore broker start
    """
    settings = cli_context.settings()
    embedded = EmbeddedBroker.from_bootstrap(settings.kafka.bootstrap_servers, settings.state_dir)
    pid = embedded.running_pid()
    answering = is_answering(embedded.address)
    if pid is not None and answering:
        click.echo(f"broker running on {embedded.address} (pid {pid})")
        return
    if answering:
        click.echo(f"a broker not started here answers on {embedded.address}")
        return
    state = f"pid {pid} runs but does not answer" if pid is not None else "not running"
    click.echo(f"broker on {embedded.address}: {state}")
    raise SystemExit(1)
