"""Run `python -m producer ARGS`, the same as `streamscore publish ARGS`."""

import sys

from streamscore.cli import main

if __name__ == "__main__":
    main(["publish", *sys.argv[1:]])
