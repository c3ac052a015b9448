"""Profile one worker on a backlog with pyinstrument: `python -m bench.profile OUTPUT`."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench import suite
from bench.context import BenchContext, create_topics, publish_backlog, train_model
from streamscore.broker import EmbeddedBroker, free_port


def main(argv: list[str] | None = None) -> int:
    """Run one worker under pyinstrument on a backlog and write the text report."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("output", type=Path, help="file for pyinstrument's text report")
    parser.add_argument("--events", type=int, default=50_000, help="backlog events")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="streamscore-profile-") as state:
        state_dir = Path(state)
        broker = EmbeddedBroker("127.0.0.1", free_port(), state_dir / "broker")
        broker.start()
        try:
            context = BenchContext(
                bootstrap=broker.address,
                tracking_uri=f"sqlite:///{state_dir / 'mlflow.db'}",
                state_dir=state_dir,
                input_topic="bench-events",
            )
            train_model(context, is_quick=False)
            create_topics(context.bootstrap, [context.input_topic])
            publish_backlog(context.bootstrap, context.input_topic, args.events)
            result = suite.workers(
                context, "profile", 1, args.events, profile=args.output.resolve()
            )
        finally:
            broker.stop()
    print(f"events/s {result.events_per_s}; report in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
