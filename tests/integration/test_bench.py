"""The benchmark script runs end to end on a tiny input and writes every run's figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[2]
RUNS = (
    "model_ceiling",
    "kafka_ceiling",
    "streamscore",
    "streamscore_exactly_once",
    "naive_loop",
    "quix_streams",
    "scaling_1_worker",
    "scaling_2_workers",
    "streamscore_latency",
    "kafka_ceiling_latency",
    "streamscore_soak",
)
FIELDS = ("events_per_s", "p50_ms", "p95_ms", "p99_ms", "peak_rss_mb")


def test_bench_quick_run_writes_every_run(
    kafka_bootstrap: str, tracking_uri: str, registered_model: str, tmp_path: Path
) -> None:
    command = [
        sys.executable,
        "-m",
        "bench",
        "--quick",
        "--no-quix",
        "--events",
        "500",
        "--small-events",
        "50",
        "--bootstrap",
        kafka_bootstrap,
        "--tracking-uri",
        tracking_uri,
        "--model-uri",
        registered_model,
        "--output",
        str(tmp_path),
    ]
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240)

    assert finished.returncode == 0, finished.stderr[-3000:]
    document = orjson.loads((tmp_path / "latest.json").read_bytes())
    assert set(RUNS) <= set(document["runs"])
    for name in RUNS:
        assert set(FIELDS) <= set(document["runs"][name]), name
    # 500 results can arrive in one read, too fast for a rate, so the counts are checked.
    expected = {
        "kafka_ceiling": 500,
        "streamscore": 500,
        "streamscore_exactly_once": 500,
        "scaling_2_workers": 500,
        "naive_loop": 50,
    }
    for name, events in expected.items():
        record = document["runs"][name]
        assert record["events"] == events, (name, record)
        assert record["peak_rss_mb"], (name, record)
        assert record["p99_ms"] is not None, (name, record)
    assert document["runs"]["model_ceiling"]["events_per_s"] > 0
    assert document["runs"]["streamscore_latency"]["p99_ms"] > 0
    assert document["runs"]["kafka_ceiling_latency"]["p99_ms"] > 0
    # The quick soak run publishes for 3 s at 200 events/s, and every event needs a result.
    soak = document["runs"]["streamscore_soak"]
    assert soak["events"] == 600, soak
    assert soak["peak_rss_mb"], soak
    assert "machine" in document
    assert (tmp_path / "latest.png").stat().st_size > 0
    assert "| streamscore |" in finished.stdout
