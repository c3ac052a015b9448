"""Run the benchmark: `python -m bench` (what `make bench` runs), `--quick` for a smoke run.

Steps:
    1. Start a private embedded broker and train the reference model into a private registry.
    2. Publish the backlog once: the SMS messages repeated to `--events`, and the first
       `--small-events` of them on a second topic for the one-message-at-a-time runs.
    3. Repeat every throughput run `--repeats` times, interleaved, each in its own process and
       consumer group. naive_loop and quix_streams, each bound by one core, run side by side.
    4. Run the latency run at half of the median streamscore rate, and the same with
       kafka_ceiling's model-free loop in the worker's place. Then the soak run: one worker for
       `--soak-s` at a quarter of the median streamscore rate, its memory sampled.
    5. Write `latest.json` and `latest.png`, and print the table.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from bench import report, suite
from bench.context import (
    MODEL_FILE_NAME,
    MODEL_URI,
    BenchContext,
    create_topics,
    publish_backlog,
    train_model,
)
from bench.measure import RunResult, not_run
from streamscore.broker import EmbeddedBroker, free_port

THROUGHPUT_RUNS = (
    "model_ceiling",
    "kafka_ceiling",
    "streamscore",
    "streamscore_exactly_once",
    "scaling_2_workers",
    "naive_loop",
    "quix_streams",
)
# The one-message-at-a-time runs. Each is bound by one core and loads the broker little, so the
# two run side by side on the 2-core machine.
PEERS = ("naive_loop", "quix_streams")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="backlog events per run")
    parser.add_argument(
        "--small-events", type=int, default=3_000, help="events of naive_loop and quix_streams"
    )
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each throughput run")
    parser.add_argument(
        "--rate",
        type=float,
        help="events/s of the latency runs (default: half of the median streamscore rate)",
    )
    parser.add_argument("--latency-s", type=float, default=10.0, help="length of each latency run")
    parser.add_argument(
        "--soak-s", type=float, default=300.0, help="length of the soak run (0: no soak run)"
    )
    parser.add_argument(
        "--soak-rate",
        type=float,
        help="events/s of the soak run (default: a quarter of the median streamscore rate)",
    )
    parser.add_argument("--no-quix", action="store_true", help="skip the quix_streams run")
    parser.add_argument(
        "--runs",
        default=",".join(THROUGHPUT_RUNS),
        help="comma-separated throughput runs to make (default: all); the others are recorded "
        "as not selected",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: a 5-tree model, 1 repeat, 2 s latency runs, 3 s soak run at 200 events/s",
    )
    parser.add_argument(
        "--bootstrap", help="use the Kafka broker at host:port instead of starting Tansu"
    )
    parser.add_argument(
        "--model-uri", help="serve this registered model (with --tracking-uri) instead of training"
    )
    parser.add_argument("--tracking-uri", help="MLflow registry of --model-uri")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).parent / "results",
        help="directory for latest.json and latest.png",
    )
    args = parser.parse_args(argv)
    if bool(args.model_uri) != bool(args.tracking_uri):
        parser.error("--model-uri and --tracking-uri go together")
    unknown = set(args.runs.split(",")) - set(THROUGHPUT_RUNS)
    if unknown:
        parser.error(
            f"unknown run(s) {', '.join(sorted(unknown))}; choose from {', '.join(THROUGHPUT_RUNS)}"
        )
    for option in ("events", "small_events", "repeats"):
        if getattr(args, option) < 1:
            parser.error(
                f"--{option.replace('_', '-')} must be at least 1, not {getattr(args, option)}"
            )
    for option in ("rate", "latency_s", "soak_rate"):
        value = getattr(args, option)
        if value is not None and not (value > 0 and math.isfinite(value)):
            parser.error(f"--{option.replace('_', '-')} must be a positive number, not {value}")
    if not (args.soak_s >= 0 and math.isfinite(args.soak_s)):
        parser.error(f"--soak-s must be 0 or a positive number, not {args.soak_s}")
    if args.quick:
        args.repeats = 1
        args.latency_s = 2.0
        args.soak_s = min(args.soak_s, 3.0)
        args.soak_rate = args.soak_rate or 200.0
        args.small_events = min(args.small_events, args.events)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and report it."""
    args = parse_args(argv)
    started = time.monotonic()
    load_before = os.getloadavg()
    quix_error = None if args.no_quix else suite.ensure_quix_venv()

    with tempfile.TemporaryDirectory(prefix="streamscore-bench-") as state:
        state_dir = Path(state)
        broker = None
        if not args.bootstrap:
            broker = EmbeddedBroker("127.0.0.1", free_port(), state_dir / "broker")
            broker.start()
        try:
            # 1. The model and 2. the backlog.
            suffix = uuid.uuid4().hex[:8]
            context = BenchContext(
                bootstrap=args.bootstrap or broker.address,  # type: ignore[union-attr]
                tracking_uri=args.tracking_uri or f"sqlite:///{state_dir / 'mlflow.db'}",
                state_dir=state_dir,
                input_topic=f"bench-events-{suffix}",
                small_topic=f"bench-events-small-{suffix}",
                model_uri=args.model_uri or MODEL_URI,
                log_dir=_log_dir(args.output),
            )
            if not args.model_uri:
                _step("training the reference model", started)
                train_model(context, args.quick)
            model_file = _export_model(context)
            _step(f"publishing {args.events:,} events", started)
            create_topics(context.bootstrap, [context.input_topic, context.small_topic])
            publish_backlog(context.bootstrap, context.input_topic, args.events)
            publish_backlog(context.bootstrap, context.small_topic, args.small_events)

            # 3. Throughput runs.
            samples = _throughput_runs(context, args, model_file, quix_error, started)

            # 4. Latency run.
            rate = args.rate or _half_rate(samples["streamscore"])
            _step(f"latency run at {rate:,.0f} events/s for {args.latency_s:g} s", started)
            latency = suite.latency(context, rate, args.latency_s)
            _step("the same without a model: kafka_ceiling's loop", started)
            floor = suite.latency(context, rate, args.latency_s, run="kafka_ceiling")

            # 5. Soak run.
            soak_rate = args.soak_rate or rate / 2
            soak = None
            if args.soak_s > 0:
                _step(f"soak run at {soak_rate:,.0f} events/s for {args.soak_s:g} s", started)
                soak = suite.soak(context, soak_rate, args.soak_s)
        finally:
            if broker is not None:
                broker.stop()

    # 6. Report.
    runs = {name: report.median_record(runs) for name, runs in samples.items()}
    runs["streamscore_latency"] = report.median_record([latency.result])
    runs["kafka_ceiling_latency"] = report.median_record([floor.result])
    runs["streamscore_soak"] = report.soak_record(soak)
    runs["scaling_1_worker"] = {**runs["streamscore"], "note": "the streamscore run"}
    checked = report.targets(samples, runs)
    soak_rss_mb = soak.rss_samples if soak else []
    elapsed_s = time.monotonic() - started
    document = {
        "runs": runs,
        "targets": checked,
        "machine": report.machine_info(load_before),
        "settings": {
            "events": args.events,
            "small_events": args.small_events,
            "repeats": args.repeats,
            "latency_s": args.latency_s,
            "latency_rate": rate,
            "soak_s": args.soak_s,
            "soak_rate": soak_rate,
            "quick": args.quick,
            "elapsed_s": round(elapsed_s, 1),
        },
        "soak_rss_mb": report.per_second(soak_rss_mb),
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "latest.json").write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    latency_ms = {
        "streamscore_latency": latency.latency_ms,
        "kafka_ceiling_latency": floor.latency_ms,
    }
    report.plot(runs, latency_ms, soak_rss_mb, args.output / "latest.png")
    print(report.markdown_table(runs, checked))
    print(f"\nbench finished in {elapsed_s:.0f} s; results in {args.output / 'latest.json'}")
    return 0


def _throughput_runs(
    context: BenchContext,
    args: argparse.Namespace,
    model_file: Path,
    quix_error: str | None,
    started: float,
) -> dict[str, list[RunResult]]:
    selected = set(args.runs.split(","))
    small = context.small_topic
    makers = {
        "model_ceiling": lambda: suite.model_ceiling(context, args.events),
        "kafka_ceiling": lambda: suite.child_loop(
            context, "kafka_ceiling", context.input_topic, args.events
        ),
        "streamscore": lambda: suite.workers(context, "streamscore", 1, args.events),
        "streamscore_exactly_once": lambda: suite.workers(
            context, "streamscore_exactly_once", 1, args.events, guarantee="exactly_once"
        ),
        "scaling_2_workers": lambda: suite.workers(context, "scaling_2_workers", 2, args.events),
        "naive_loop": lambda: suite.child_loop(context, "naive_loop", small, args.small_events),
        "quix_streams": lambda: (
            not_run("skipped with --no-quix")
            if args.no_quix
            else not_run(quix_error)
            if quix_error
            else suite.quix_streams(context, small, args.small_events, model_file)
        ),
    }
    samples: dict[str, list[RunResult]] = {name: [] for name in THROUGHPUT_RUNS}
    for repeat in range(1, args.repeats + 1):
        _step(f"repeat {repeat} of {args.repeats}", started)
        for name in THROUGHPUT_RUNS:
            if name not in PEERS:
                samples[name].append(_make(makers, name, selected))
        with ThreadPoolExecutor(len(PEERS)) as pool:
            peers = {name: pool.submit(_make, makers, name, selected) for name in PEERS}
        for name, future in peers.items():
            samples[name].append(future.result())
        rates = {n: s[-1].events_per_s for n, s in samples.items() if s[-1].events_per_s}
        _step("  " + ", ".join(f"{n} {r:,.0f}/s" for n, r in rates.items()), started)
    return samples


def _make(makers: dict[str, Callable[[], RunResult]], name: str, selected: set[str]) -> RunResult:
    return makers[name]() if name in selected else not_run("not selected")


def _log_dir(output: Path) -> Path:
    """Return the `logs` directory in `output`, which outlives the temporary state.

    Only the `.log` files of an earlier run are removed, in case `--output` names a directory
    that contains other files.
    """
    logs = output / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for old in logs.glob("*.log"):
        old.unlink()
    return logs


def _half_rate(runs: list[RunResult]) -> float:
    rates = [run.events_per_s for run in runs if run.events_per_s]
    if not rates:
        raise RuntimeError("no streamscore run produced results, so there is no rate to halve")
    return statistics.median(rates) / 2


def _export_model(context: BenchContext) -> Path:
    """Save the registered model with joblib for the Quix Streams venv, which has no MLflow."""
    import joblib
    import mlflow

    mlflow.set_tracking_uri(context.tracking_uri)
    model = mlflow.sklearn.load_model(context.model_uri)
    path = context.state_dir / MODEL_FILE_NAME
    joblib.dump(model, path)
    return path


def _step(text: str, started: float) -> None:
    print(f"[{time.monotonic() - started:5.0f} s] {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
