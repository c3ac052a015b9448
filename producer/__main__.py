"""Run `python -m producer [OPTIONS]`, the same as `streamscore publish [OPTIONS]`."""

from streamscore.cli import run_subcommand

run_subcommand("publish")
