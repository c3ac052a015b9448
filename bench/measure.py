"""Measure a run from its results: throughput, end-to-end latency percentiles and peak RSS."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition


@dataclass(frozen=True)
class RunResult:
    """One measured run; `None` where a figure does not apply or the run was not made."""

    events_per_s: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    peak_rss_mb: float | None
    events: int = 0
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        """Return the fields as the JSON record of one run."""
        record: dict[str, object] = {
            "events_per_s": self.events_per_s,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "peak_rss_mb": self.peak_rss_mb,
            "events": self.events,
        }
        if self.note:
            record["note"] = self.note
        return record


def not_run(note: str) -> RunResult:
    """Return the record of a run that was not made, with the reason."""
    return RunResult(None, None, None, None, None, 0, note)


class ResultReader:
    """A thread that reads a result topic from the beginning while a run produces into it.

    Tansu, the embedded broker, reports high watermarks per record batch rather than per
    record, so the bench counts results by reading them. Each record is kept as (receive time
    in s, value). The receive time, not the record's timestamp, marks the result: Quix Streams
    copies the input event's timestamp to its output records, and Tansu does not stamp append
    time. With `is_prompt`, the reader waits for one record, then takes the records
    already fetched, so the receive time is within a fetch round trip of the moment the result
    became readable. Otherwise it reads up to 500 records per call, waiting at most 10 ms.
    With `is_counting`, it only counts: a 5-minute run's millions of records would take the
    bench a gigabyte.
    """

    def __init__(
        self, bootstrap: str, topic: str, is_prompt: bool = False, is_counting: bool = False
    ) -> None:
        config = _reader_config(bootstrap)
        config["fetch.wait.max.ms"] = 10
        self._consumer = Consumer(config)
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self._is_prompt = is_prompt
        self._is_counting = is_counting
        self._stop = threading.Event()
        self.records: list[tuple[float, bytes]] = []
        self.count = 0
        self._thread = threading.Thread(target=self._read, name=f"reader-{topic}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while not self._stop.is_set():
                if self._is_prompt:
                    messages = self._consumer.consume(1, 0.1)
                    if messages:
                        messages += self._consumer.consume(10_000, 0)
                else:
                    messages = self._consumer.consume(500, 0.01)
                received_s = time.time()
                for message in messages:
                    value = message.value()
                    if message.error() is not None or value is None:
                        continue
                    self.count += 1
                    if not self._is_counting:
                        self.records.append((received_s, value))
        finally:
            self._consumer.close()

    def wait(self, expected: int, timeout_s: float, processes: list[subprocess.Popen]) -> int:
        """Wait until `expected` records arrived, a watched process exited, or the timeout.

        Returns:
            The number of records read so far.
        """
        deadline = time.monotonic() + timeout_s
        while self.count < expected and time.monotonic() < deadline:
            if not all(is_running(process) for process in processes):
                time.sleep(1.0)  # let the reader catch the results of a process that finished
                break
            time.sleep(0.1)
        return self.count

    def close(self) -> None:
        """Stop reading and close the consumer."""
        self._stop.set()
        self._thread.join(timeout=10)


def timings(
    records: list[tuple[float, bytes]], skip_prefix: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return receive times and event times in s, of results not starting with `skip_prefix`."""
    result_s: list[float] = []
    event_s: list[float] = []
    for received_s, value in records:
        result = orjson.loads(value)
        if skip_prefix and result["event_id"].startswith(skip_prefix):
            continue
        result_s.append(received_s)
        event_s.append(_epoch_s(result["event_time"]))
    return np.asarray(result_s), np.asarray(event_s)


def summarise(
    result_s: np.ndarray, event_s: np.ndarray, peak_rss_mb: float | None, note: str = ""
) -> RunResult:
    """Compute throughput between the first and the last result, and latency percentiles.

    Timing starts at the first result, not at process start, so the group join and the model
    load are not counted.
    """
    if len(result_s) < 2:
        return RunResult(None, None, None, None, peak_rss_mb, len(result_s), note or "no results")
    span_s = float(result_s.max() - result_s.min())
    events_per_s = (len(result_s) - 1) / span_s if span_s > 0 else None
    latency_ms = (result_s - event_s) * 1000
    p50, p95, p99 = (float(v) for v in np.percentile(latency_ms, [50, 95, 99]))
    return RunResult(events_per_s, p50, p95, p99, peak_rss_mb, len(result_s), note)


def is_running(process: subprocess.Popen) -> bool:
    """Return whether a child process still runs, without reaping it.

    `Popen.poll` would reap an exited child, and with it the /proc entry that `MemorySampler`
    reads.
    """
    try:
        found = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return found is None


class MemorySampler:
    """A thread that samples a process's memory from /proc every 0.25 s until it exits.

    `peak_rss_mb` is the largest VmHWM seen, the kernel's high-water mark of resident memory
    since the process's exec. (`ru_maxrss` of `os.wait4` would also count the bench's own
    memory, which the forked child holds until its exec.) A peak reached in the last 0.25 s
    before exit can be missed.
    """

    def __init__(self, process: subprocess.Popen) -> None:
        self._status = Path(f"/proc/{process.pid}/status")
        self._process = process
        self._started = time.monotonic()
        self.peak_rss_mb = 0.0
        self.rss_mb: list[tuple[float, float]] = []
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while is_running(self._process):
            try:
                fields = dict(line.split(":", 1) for line in self._status.read_text().splitlines())
            except OSError:
                return
            if "VmHWM" in fields:
                self.peak_rss_mb = max(self.peak_rss_mb, int(fields["VmHWM"].split()[0]) / 1024)
                rss_mb = int(fields["VmRSS"].split()[0]) / 1024
                self.rss_mb.append((round(time.monotonic() - self._started, 2), rss_mb))
            time.sleep(0.25)

    def join(self) -> float:
        """Wait for the process to be gone; return its peak RSS in MB."""
        self._thread.join(timeout=5)
        return self.peak_rss_mb


def wait_for_exit(process: subprocess.Popen, timeout_s: float) -> int:
    """Wait for a child process to exit, killing it after the timeout; return its exit code."""
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def _epoch_s(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _reader_config(bootstrap: str) -> dict[str, str | int | bool]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": f"bench-reader-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        # The exactly-once run's results count once their transaction commits.
        "isolation.level": "read_committed",
    }
