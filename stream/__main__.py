"""Run the worker: `python -m stream [OPTIONS]` is `streamscore worker [OPTIONS]`."""

import sys

from streamscore.cli import main

main(["worker", *sys.argv[1:]])
