"""/healthz and /readyz of a running worker against a real broker, including a broker outage."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from stream.health import Health, HttpServer, serve
from streamscore.broker import EmbeddedBroker, free_port
from streamscore.kafka import ensure_topics
from streamscore.settings import Settings
from tests.integration.conftest import HEARTBEAT_INTERVAL_MS, SESSION_TIMEOUT_MS
from tests.integration.helpers import running_worker, wait_for
from tests.tiny_model import tiny_scorer


def _get(server: HttpServer, path: str) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{server.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback URL
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def _status_is(server: HttpServer, path: str, expected: int) -> Callable[[], bool]:
    return lambda: _get(server, path)[0] == expected


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """Start a broker of this test's own, so that stopping it leaves the session broker alone."""
    broker = EmbeddedBroker("127.0.0.1", free_port(), tmp_path / "broker")
    broker.start()
    yield broker
    broker.stop()


def _settings(bootstrap: str, tmp_path: Path) -> Settings:
    suffix = uuid.uuid4().hex[:12]
    settings = Settings(
        state_dir=tmp_path / "state",
        kafka={
            "bootstrap_servers": bootstrap,
            "session_timeout_ms": SESSION_TIMEOUT_MS,
            "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
            "consumer": {"statistics.interval.ms": 500},
        },
        topics={
            "input": f"events-{suffix}",
            "output": f"predictions-{suffix}",
            "dead_letter": f"dead-letter-{suffix}",
            "partitions": 2,
        },
        worker={"group_id": f"group-{suffix}", "batch_wait_ms": 50},
    )
    ensure_topics(settings)
    return settings


def test_readyz_not_ready_before_worker_runs() -> None:
    health = Health(stall_limit_s=60)
    server = serve("127.0.0.1", 0, CollectorRegistry(), health)
    try:
        status, body = _get(server, "/readyz")
        live_status, live_body = _get(server, "/healthz")
    finally:
        server.stop()

    assert status == 503
    assert body["status"] == "not ready"
    assert body["checks"]["model"] == {"ok": False, "detail": "no model loaded yet"}
    assert "not a member of the consumer group yet" in body["reasons"]
    assert live_status == 200
    assert live_body["status"] == "starting"


def test_readyz_ready_after_assignment(settings_factory) -> None:
    settings = settings_factory()
    health = Health.from_settings(settings.worker)

    with running_worker(settings, tiny_scorer(), health) as metrics:
        server = serve("127.0.0.1", 0, metrics.registry, health)
        try:
            wait_for(_status_is(server, "/readyz", 200))
            _, ready = _get(server, "/readyz")
            live_status, live = _get(server, "/healthz")
            metrics_status = urllib.request.urlopen(  # noqa: S310 - loopback URL
                f"http://127.0.0.1:{server.port}/metrics", timeout=5
            ).status
        finally:
            server.stop()

    assert ready["status"] == "ready"
    assert ready["checks"]["model"] == {"ok": True, "detail": "tiny version 1"}
    assert ready["checks"]["group"] == {"ok": True, "detail": "2 partitions assigned"}
    assert ready["checks"]["broker"] == {"ok": True, "detail": "reachable"}
    assert "reasons" not in ready
    assert live_status == 200
    assert live["status"] == "alive"
    assert metrics_status == 200


def test_readyz_broker_stopped_not_ready(private_broker: EmbeddedBroker, tmp_path: Path) -> None:
    settings = _settings(private_broker.address, tmp_path)
    health = Health.from_settings(settings.worker)

    with running_worker(settings, tiny_scorer(), health) as metrics:
        server = serve("127.0.0.1", 0, metrics.registry, health)
        try:
            wait_for(_status_is(server, "/readyz", 200))
            private_broker.stop()
            wait_for(_status_is(server, "/readyz", 503))
            _, body = _get(server, "/readyz")
            live_status, _ = _get(server, "/healthz")
            # Bring the broker back so that the worker can leave its group and stop.
            private_broker.start()
            ensure_topics(settings)
            wait_for(_status_is(server, "/readyz", 200), timeout_s=60)
        finally:
            server.stop()

    assert body["status"] == "not ready"
    assert body["checks"]["broker"]["ok"] is False
    # Whichever comes first: librdkafka's error callback or its next statistics.
    detail = body["checks"]["broker"]["detail"]
    assert detail.startswith(("all brokers down", "no broker connection is up")), detail
    assert body["reasons"] == [detail]
    assert live_status == 200
