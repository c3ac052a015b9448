"""Run `python -m stream [OPTIONS]`, the same as `streamscore worker [OPTIONS]`."""

from streamscore.cli import run_subcommand

run_subcommand("worker")
