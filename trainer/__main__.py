"""Run `streamscore train`: `python -m trainer [OPTIONS]` takes the options of that command.

Options of the `streamscore` group itself, such as --config, are not available here. Set the
config file with the STREAMSCORE_CONFIG environment variable instead.
"""

import sys

from streamscore.cli import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]])
