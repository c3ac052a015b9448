"""Run `python -m streamscore`, the same as the `streamscore` command."""

from streamscore.cli import main

main()
