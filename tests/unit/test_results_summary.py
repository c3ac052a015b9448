"""Latency and percentiles of the `results` summary."""

from __future__ import annotations

from streamscore.results import format_latency_summary, latency_s, percentile, printable


def test_latency_is_scored_at_minus_event_time() -> None:
    result = {
        "event_time": "2025-01-01T00:00:00.000000+00:00",
        "scored_at": "2025-01-01T00:00:00.250000+00:00",
    }

    assert latency_s(result) == 0.25


def test_latency_missing_event_time_is_none() -> None:
    assert latency_s({"event_time": None, "scored_at": "2025-01-01T00:00:00+00:00"}) is None


def test_percentile_nearest_rank() -> None:
    values = [float(number) for number in range(1, 101)]

    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0


def test_latency_summary_formats_units() -> None:
    assert format_latency_summary([0.01, 0.02, 12.0]) == "latency p50 20 ms, p95 12.0 s, p99 12.0 s"
    assert format_latency_summary([]) == "latency: no result has both event_time and scored_at"


def test_printable_escapes_terminal_control_characters() -> None:
    hostile = "id\x1b]0;pwned\x07\x1b[31mRED\x00"

    assert printable(hostile) == "id\\x1b]0;pwned\\x07\\x1b[31mRED\\x00"
    assert printable("plain id-7 ünïcode") == "plain id-7 ünïcode"
