"""Run the failure scenarios and write `reports/chaos.json` with a table on stdout.

Usage: python -m chaos [--events N] [--only NAME ...] [--output FILE]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

import orjson

from chaos.harness import (
    REPO,
    ChaosContext,
    Outcome,
    broker_hides_aborted_transactions,
    train_model,
)
from chaos.scenarios import Scenario, all_scenarios
from streamscore.broker import EmbeddedBroker, free_port

logger = logging.getLogger("chaos")

BROKER_SHOWS_ABORTED = (
    "this broker shows read_committed readers the records of aborted transactions (Tansu "
    "0.6.0 does); a SIGKILL between a batch's produce and its commit then shows duplicates "
    "that Kafka would hide"
)


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios; exit 1 when any loses an event or doubles one it must not."""
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3_000, help="events per scenario")
    names = sorted({name for name, _, _ in all_scenarios()})
    parser.add_argument(
        "--only",
        action="append",
        choices=names,
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(names)}",
    )
    parser.add_argument("--output", type=Path, default=REPO / "reports" / "chaos.json")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logger.setLevel(logging.INFO)

    if args.events < 10:
        parser.error(f"--events must be at least 10, got {args.events}")
    scenarios = [s for s in all_scenarios() if not args.only or s[0] in args.only]
    # Kept when a scenario fails, for its worker logs; removed after a clean run.
    run_dir = Path(tempfile.mkdtemp(prefix="streamscore-chaos-"))
    logger.info("logs and state in %s", run_dir)
    outcomes = _run(scenarios, run_dir, args.events)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(
        orjson.dumps([o.as_dict() for o in outcomes], option=orjson.OPT_INDENT_2) + b"\n"
    )
    print(table(outcomes))
    print(f"\nreport written to {args.output}")
    failures = [o for o in outcomes if violations(o)]
    if failures:
        print(f"worker logs kept in {run_dir / 'logs'}", file=sys.stderr)
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    for outcome in failures:
        print(
            f"FAILED {outcome.name} ({outcome.guarantee}): {'; '.join(violations(outcome))}",
            file=sys.stderr,
        )
    return 1 if failures else 0


def _run(scenarios: list[tuple[str, str, Scenario]], run_dir: Path, events: int) -> list[Outcome]:
    """Run the scenarios on the embedded broker, or on `KAFKA_BOOTSTRAP_SERVERS` when set."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker = None if external else EmbeddedBroker("127.0.0.1", free_port(), run_dir / "broker")
    if broker is not None:
        broker.start()
    bootstrap = external or cast(EmbeddedBroker, broker).address
    try:
        tracking_uri = f"sqlite:///{run_dir / 'mlflow.db'}"
        model_uri = train_model(tracking_uri, run_dir / "train")
        hides_aborted = broker_hides_aborted_transactions(bootstrap)
        context = ChaosContext(bootstrap, tracking_uri, run_dir, model_uri)
        outcomes = []
        for name, guarantee, scenario in scenarios:
            logger.info("scenario started name=%s guarantee=%s events=%d", name, guarantee, events)
            started = time.monotonic()
            outcome = scenario(context, events)
            logger.info("scenario finished name=%s seconds=%.1f", name, time.monotonic() - started)
            if guarantee == "exactly_once" and not hides_aborted:
                outcome.notes.append(BROKER_SHOWS_ABORTED)
            outcomes.append(outcome)
        return outcomes
    finally:
        if broker is not None:
            broker.stop()


def violations(outcome: Outcome) -> list[str]:
    """Return the promises this outcome breaks.

    Nothing may be lost, ever. Nothing may be doubled, except after a crash or an outage under
    at_least_once.
    """
    broken = []
    if outcome.lost:
        broken.append(f"{outcome.lost} events lost")
    may_repeat = outcome.guarantee == "at_least_once" and outcome.name in (
        "sigkill",
        "broker_outage",
    )
    if outcome.duplicates and not may_repeat:
        broken.append(f"{outcome.duplicates} duplicates")
    return broken


def table(outcomes: list[Outcome]) -> str:
    """Format the outcomes as a markdown table."""
    header = (
        "| scenario | guarantee | sent | results | dead-lettered | lost | duplicates | seconds |"
    )
    lines = [header, "|---|---|---:|---:|---:|---:|---:|---:|"]
    for o in outcomes:
        lines.append(
            f"| {o.name} | {o.guarantee} | {o.sent} | {o.results_unique} | {o.dead_lettered} "
            f"| {o.lost} | {o.duplicates} | {o.seconds:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
