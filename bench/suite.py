"""Each run of the bench: start its process(es), read its results as they come, measure them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from confluent_kafka import Producer

from bench.context import REPO, BenchContext, create_topics, sms_messages, write_config
from bench.measure import (
    MemorySampler,
    ResultReader,
    RunResult,
    is_running,
    not_run,
    summarise,
    timings,
    wait_for_exit,
)
from streamscore.events import encode_event, format_time
from streamscore.kafka import producer_config
from streamscore.settings import Settings

QUIX_VENV = REPO / "bench" / ".venv-quix"
QUIX_REQUIREMENTS = REPO / "bench" / "requirements-quix.txt"

# Maximum time one run may take before the bench gives up on it, in seconds.
RUN_TIMEOUT_S = 240.0
# Events published before a latency run is measured, so that the group join is not measured.
WARMUP_EVENTS = 50
# The soak run's producer linger, in ms; see `soak`.
SOAK_LINGER_MS = 50


@dataclass(frozen=True)
class Child:
    """A process of a run, the sampler of its memory, and its log file."""

    process: subprocess.Popen[bytes]
    memory: MemorySampler
    log: Path

    def wait(self, timeout_s: float = RUN_TIMEOUT_S) -> tuple[int, float]:
        """Wait for the process to exit; return its exit code and peak RSS in MB."""
        code = wait_for_exit(self.process, timeout_s)
        return code, self.memory.join()

    def stop(self) -> float:
        """Stop a worker with SIGTERM as an operator would; return its peak RSS in MB."""
        if is_running(self.process):
            self.process.send_signal(signal.SIGTERM)
        return self.wait(60)[1]


@dataclass(frozen=True)
class LatencyRun:
    """A latency run: its figures, each event's latency in ms, and (s, RSS MB) worker samples."""

    result: RunResult
    latency_ms: list[float]
    rss_samples: list[tuple[float, float]]


@dataclass(frozen=True)
class SoakRun:
    """A soak run: its figures and (s, RSS MB) worker samples."""

    result: RunResult
    rss_samples: list[tuple[float, float]]


def model_ceiling(context: BenchContext, events: int) -> RunResult:
    """Time `predict_proba` on in-memory batches in a child process."""
    settings = context.settings("model-ceiling")
    child = _start(
        context, "model_ceiling", _bench_runs("model_ceiling", context, settings, events)
    )
    code, peak_rss_mb = child.wait()
    if code != 0:
        return not_run(f"failed with exit code {code}; see {child.log}")
    summary = orjson.loads(child.log.read_text().strip().splitlines()[-1])
    note = f"predict_proba only, batches of {summary['batch_size']}"
    return RunResult(summary["events_per_s"], None, None, None, peak_rss_mb, events, note)


def child_loop(context: BenchContext, name: str, input_topic: str, events: int) -> RunResult:
    """Run `kafka_ceiling` or `naive_loop` in a child process that stops after `events`."""
    settings = context.settings(name, topics={"input": input_topic})
    create_topics(context.bootstrap, [settings.topics.output])
    reader = ResultReader(context.bootstrap, settings.topics.output)
    child = _start(context, name, _bench_runs(name, context, settings, events))
    return _finish(child, reader, events)


def workers(
    context: BenchContext,
    name: str,
    count: int,
    events: int,
    profile: Path | None = None,
    guarantee: str = "at_least_once",
) -> RunResult:
    """Run `count` worker processes in one group until the output holds `events` results.

    With `profile`, the first worker runs under pyinstrument, which writes its text report there.
    """
    settings = context.settings(name, worker={"processing_guarantee": guarantee})
    create_topics(context.bootstrap, [settings.topics.output, settings.topics.dead_letter])
    config = write_config(settings, context.state_dir / f"{name}.yaml")
    reader = ResultReader(context.bootstrap, settings.topics.output)
    children = [_start_worker(context, f"{name}-{i}", config) for i in range(count)]
    if profile is not None:
        children[0].stop()
        wrapper = [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", str(profile), "-m"]
        children[0] = _start(context, f"{name}-0", [*wrapper, "stream", "--config", str(config)])
    produced = reader.wait(events, RUN_TIMEOUT_S, [child.process for child in children])
    peaks = [child.stop() for child in children]
    reader.close()
    if produced < events:
        return not_run(f"{produced} of {events} results; see {children[0].log}")
    result_s, event_s = timings(reader.records)
    return summarise(result_s, event_s, max(peaks), f"{count} worker process(es)")


def quix_streams(
    context: BenchContext, input_topic: str, events: int, model_file: Path
) -> RunResult:
    """Run the Quix Streams application in its own venv until it scored `events` events."""
    python = QUIX_VENV / "bin" / "python"
    if not python.exists():
        return not_run(f"no {QUIX_VENV.relative_to(REPO)}; `make bench` creates it")
    settings = context.settings("quix", topics={"input": input_topic})
    create_topics(context.bootstrap, [settings.topics.output])
    command = [
        str(python),
        str(REPO / "bench" / "quix_app.py"),
        context.bootstrap,
        input_topic,
        settings.topics.output,
        settings.worker.group_id,
        str(model_file),
        str(events),
    ]
    reader = ResultReader(context.bootstrap, settings.topics.output)
    child = _start(context, "quix_streams", command)
    return _finish(child, reader, events)


def latency(
    context: BenchContext, rate: float, duration_s: float, run: str = "streamscore"
) -> LatencyRun:
    """Publish at `rate` events/s while one worker runs, and measure event time to result.

    The result time is when the bench's reader receives the result. With `run` set to
    "kafka_ceiling", the model-free loop of `bench.runs` takes the worker's place, which gives
    the latency of the broker and the bench themselves.
    """
    name = "latency" if run == "streamscore" else f"{run}-latency"
    settings = context.settings(name, topics={"input": f"events-{name}-{time.time_ns()}"})
    topics = settings.topics
    create_topics(context.bootstrap, [topics.input, topics.output, topics.dead_letter])
    reader = ResultReader(context.bootstrap, topics.output, is_prompt=True)
    events = max(2, int(rate * duration_s))
    if run == "streamscore":
        config = write_config(settings, context.state_dir / f"{name}.yaml")
        child = _start_worker(context, name, config)
    else:
        child = _start(context, name, _bench_runs(run, context, settings, WARMUP_EVENTS + events))
    publisher = _PacedPublisher(settings)
    try:
        publisher.publish(WARMUP_EVENTS, None, "warmup-")
        reader.wait(WARMUP_EVENTS, 60, [child.process])
        publisher.publish(events, rate, "")
        produced = reader.wait(WARMUP_EVENTS + events, 60, [child.process])
    finally:
        peak_rss_mb = child.stop()
        reader.close()
    samples = child.memory.rss_mb
    if produced < WARMUP_EVENTS + events:
        return LatencyRun(not_run(f"{produced} results; see {child.log}"), [], samples)
    result_s, event_s = timings(reader.records, "warmup-")
    result = summarise(result_s, event_s, peak_rss_mb, f"published at {rate:,.0f} events/s")
    return LatencyRun(result, ((result_s - event_s) * 1000).tolist(), samples)


def soak(context: BenchContext, rate: float, duration_s: float) -> SoakRun:
    """Publish at `rate` events/s for `duration_s` while one worker runs; sample its memory.

    The run counts results instead of keeping them, and is made only when every published
    event got its result: a worker that stops consuming midway fails it. Publisher and worker
    linger 50 ms, because Tansu 0.6.0 returns no records from a partition that contains about
    15,000 to 20,000 record batches (measured), and 5 minutes of 5 ms batches exceed that.
    """
    settings = context.settings(
        "soak",
        topics={"input": f"events-soak-{time.time_ns()}"},
        kafka={"linger_ms": SOAK_LINGER_MS},
    )
    topics = settings.topics
    create_topics(context.bootstrap, [topics.input, topics.output, topics.dead_letter])
    config = write_config(settings, context.state_dir / "soak.yaml")
    reader = ResultReader(context.bootstrap, topics.output, is_counting=True)
    child = _start_worker(context, "soak", config)
    publisher = _PacedPublisher(settings)
    try:
        publisher.publish(WARMUP_EVENTS, None, "warmup-")
        reader.wait(WARMUP_EVENTS, 60, [child.process])
        events = max(2, int(rate * duration_s))
        started = time.monotonic()
        publisher.publish(events, rate, "")
        produced = reader.wait(WARMUP_EVENTS + events, 60, [child.process])
        elapsed_s = time.monotonic() - started
    finally:
        peak_rss_mb = child.stop()
        reader.close()
    samples = child.memory.rss_mb
    scored = produced - WARMUP_EVENTS
    if scored < events:
        note = f"{scored:,} of {events:,} results; see {child.log}"
        return SoakRun(not_run(note), samples)
    note = f"published at {rate:,.0f} events/s for {duration_s:g} s"
    result = RunResult(events / elapsed_s, None, None, None, peak_rss_mb, events, note)
    return SoakRun(result, samples)


def ensure_quix_venv() -> str | None:
    """Create `bench/.venv-quix` with the pinned Quix Streams unless it exists; return an error."""
    if (QUIX_VENV / "bin" / "python").exists():
        return None
    try:
        subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)  # noqa: S603
        pip = [str(QUIX_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "-r", str(QUIX_REQUIREMENTS)], check=True)  # noqa: S603
    except subprocess.CalledProcessError as exc:
        return f"cannot create {QUIX_VENV}: {exc}"
    return None


def _finish(child: Child, reader: ResultReader, events: int) -> RunResult:
    """Wait for a process that stops by itself, read the rest of its results, measure them."""
    code, peak_rss_mb = child.wait()
    reader.wait(events, 30, [])
    reader.close()
    if code != 0:
        return not_run(f"failed with exit code {code}; see {child.log}")
    if len(reader.records) < events:
        return not_run(f"{len(reader.records)} of {events} results; see {child.log}")
    result_s, event_s = timings(reader.records)
    return summarise(result_s, event_s, peak_rss_mb)


class _PacedPublisher:
    """One connected producer for the latency run's warm-up and its paced events.

    `producer.publisher.publish` connects a new producer per call, and the first events of a
    call wait for that connection after their event time was stamped, which the latency run
    would count against the worker.
    """

    def __init__(self, settings: Settings) -> None:
        self._producer = Producer(producer_config(settings.kafka))
        self._topic = settings.topics.input
        self._messages = sms_messages()

    def publish(self, count: int, rate: float | None, id_prefix: str) -> None:
        """Produce `count` events at `rate` events/s, stamping each when it is sent.

        The events due are sent together at most once per millisecond: a wake-up per event
        would cost the bench CPU that the broker and the worker share with it.
        """
        started = time.monotonic()
        sent = 0
        while sent < count:
            due = count
            if rate is not None:
                due = min(count, int((time.monotonic() - started) * rate) + 1)
            for index in range(sent, due):
                event_id = f"{id_prefix}{index}"
                message = self._messages[index % len(self._messages)]
                value = encode_event(event_id, {"message": message}, format_time())
                self._producer.produce(self._topic, value, event_id.encode())
            sent = due
            if rate is not None and sent < count:
                self._producer.poll(max(0.001, started + sent / rate - time.monotonic()))
            else:
                self._producer.poll(0)
        remaining = self._producer.flush(30)
        if remaining:
            raise RuntimeError(f"{remaining} of {count} latency events were not delivered")


def _bench_runs(name: str, context: BenchContext, settings: Settings, events: int) -> list[str]:
    config = write_config(settings, context.state_dir / f"{name}.yaml")
    runs = [sys.executable, "-m", "bench.runs", name]
    return [*runs, "--config", str(config), "--events", str(events)]


def _start_worker(context: BenchContext, name: str, config: Path) -> Child:
    return _start(context, name, [sys.executable, "-m", "stream", "--config", str(config)])


def _start(context: BenchContext, name: str, command: list[str]) -> Child:
    log = (context.log_dir or context.state_dir) / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - the bench's own commands, no shell
            command, stdout=output, stderr=subprocess.STDOUT, cwd=REPO
        )
    return Child(process, MemorySampler(process), log)
