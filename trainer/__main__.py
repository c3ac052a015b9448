"""Run `python -m trainer [OPTIONS]`, the same as `streamscore train [OPTIONS]`."""

from streamscore.cli import run_subcommand

run_subcommand("train")
