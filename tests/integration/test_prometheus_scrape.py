"""A real Prometheus server scrapes a running worker; its HTTP API returns the worker's counts.

Needs the `prometheus` binary of Debian's package, which `make test-deps` installs. Without it
the test fails instead of skipping, so that CI cannot pass without having scraped once.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from stream.health import Health, serve
from streamscore.broker import free_port
from streamscore.events import encode_event
from tests.integration.helpers import produce, running_worker, wait_for
from tests.tiny_model import tiny_scorer

EVENTS = 250
# Seconds between scrapes; Prometheus accepts intervals down to 1 ms, 1 s keeps the test short.
SCRAPE_INTERVAL = "1s"


@pytest.fixture
def prometheus_binary() -> str:
    """Return the path of the prometheus binary, failing the test when it is not installed."""
    path = shutil.which("prometheus")
    if path is None:
        pytest.fail(
            "the prometheus binary is not on PATH; install it with `make test-deps` "
            "(Debian package prometheus)"
        )
    return path


@pytest.fixture
def start_prometheus(prometheus_binary: str, tmp_path: Path) -> Iterator[Any]:
    """Return a function that starts Prometheus on loopback, scraping one target; stop it after."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> str:
        config = tmp_path / "prometheus.yml"
        scrape = {
            "job_name": "streamscore",
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": SCRAPE_INTERVAL,
            "static_configs": [{"targets": [target]}],
        }
        config.write_text(yaml.safe_dump({"scrape_configs": [scrape]}), encoding="utf-8")
        address = f"127.0.0.1:{free_port()}"
        log = (tmp_path / "prometheus.log").open("wb")
        processes.append(
            subprocess.Popen(  # noqa: S603 - the binary found on PATH, fixed arguments
                [
                    prometheus_binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address={address}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        return f"http://{address}"

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _query(base_url: str, expression: str) -> list[dict[str, Any]]:
    """Return the result vector of an instant query; empty while Prometheus is not up."""
    url = f"{base_url}/api/v1/query?{urllib.parse.urlencode({'query': expression})}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback URL
            body = orjson.loads(response.read())
    except OSError:
        return []
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _value(base_url: str, expression: str) -> float | None:
    result = _query(base_url, expression)
    return float(result[0]["value"][1]) if len(result) == 1 else None


def test_prometheus_scrapes_worker_counts(settings_factory, start_prometheus) -> None:
    settings = settings_factory()
    health = Health.from_settings(settings.worker)

    with running_worker(settings, tiny_scorer(), health) as metrics:
        server = serve("127.0.0.1", 0, metrics.registry, health)
        try:
            prometheus = start_prometheus(f"127.0.0.1:{server.port}")
            wait_for(lambda: _value(prometheus, 'up{job="streamscore"}') == 1, timeout_s=60)
            events = [
                (f"key-{i}".encode(), encode_event(f"event-{i}", {"message": "free prize"}))
                for i in range(EVENTS)
            ]
            produce(settings, events)
            # A scrape can fall between counting a batch as consumed and scoring it.
            wait_for(
                lambda: (
                    _value(prometheus, "streamscore_events_consumed_total") == EVENTS
                    and _value(prometheus, "sum(streamscore_predictions_total)") == EVENTS
                ),
                timeout_s=60,
            )
            up = _value(prometheus, 'up{job="streamscore"}')
            consumed = _value(prometheus, "streamscore_events_consumed_total")
            predicted = _value(prometheus, "sum(streamscore_predictions_total)")
        finally:
            server.stop()

    assert up == 1
    assert consumed == EVENTS
    assert predicted == EVENTS
    assert metrics.events_consumed._value.get() == EVENTS
