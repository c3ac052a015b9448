"""Health: liveness from the loop's ticks, readiness from model, group and broker state."""

from __future__ import annotations

from stream.health import SCORING_SLACK_S, Health
from streamscore.settings import WorkerSettings


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _ready_health(clock: _Clock) -> Health:
    health = Health(stall_limit_s=10, clock=clock)
    health.set_model("spam", "3")
    health.set_assigned(2)
    health.set_broker(None)
    health.tick()
    return health


def test_health_stall_limit_from_longest_wait() -> None:
    worker = WorkerSettings(
        batch_wait_ms=100, flush_timeout_s=30, retry_backoff_s=1, retry_backoff_max_s=45
    )

    health = Health.from_settings(worker)

    assert health.stall_limit_s == 3 * 45 + SCORING_SLACK_S


def test_health_alive_until_stall_limit() -> None:
    clock = _Clock()
    health = _ready_health(clock)

    clock.now += 10
    is_alive, body = health.liveness()
    assert is_alive
    assert body["status"] == "alive"

    clock.now += 0.5
    is_alive, body = health.liveness()
    assert not is_alive
    assert body["status"] == "stalled"
    assert body["detail"] == "the worker loop has not run for 10 s"


def test_health_ready_when_all_checks_pass() -> None:
    is_ready, body = _ready_health(_Clock()).readiness()

    assert is_ready
    assert body["status"] == "ready"
    assert body["checks"]["group"]["detail"] == "2 partitions assigned"


def test_health_joined_group_without_partitions_ready() -> None:
    health = _ready_health(_Clock())
    health.set_assigned(0)
    health.set_group_joined(True)

    is_ready, body = health.readiness()

    assert is_ready
    assert body["checks"]["group"] == {"ok": True, "detail": "0 partitions assigned"}


def test_health_broker_problem_makes_not_ready() -> None:
    health = _ready_health(_Clock())
    health.set_broker("all brokers down: 1/1 brokers are down")

    is_ready, body = health.readiness()

    assert not is_ready
    assert body["reasons"] == ["all brokers down: 1/1 brokers are down"]
