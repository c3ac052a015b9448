"""The scenarios of `make chaos`, smaller: nothing lost, nothing doubled that must not be.

Each scenario streams events through real worker processes on the session broker and breaks
something on the way. The tally reads the output and dead-letter topics with read_committed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chaos.harness import ChaosContext, Outcome, broker_hides_aborted_transactions
from chaos.scenarios import (
    broker_outage,
    graceful_shutdown,
    poison_mix,
    rebalance,
    sigkill,
    slow_model,
)

EVENTS = 400


@pytest.fixture
def context(
    kafka_bootstrap: str, tracking_uri: str, registered_model: str, tmp_path: Path
) -> ChaosContext:
    """Return a chaos context on the session broker with the session's registered model."""
    return ChaosContext(kafka_bootstrap, tracking_uri, tmp_path, registered_model)


def _assert_complete(outcome: Outcome) -> None:
    assert outcome.sent == EVENTS
    assert outcome.lost == 0, outcome
    assert outcome.results_unique + outcome.dead_lettered == outcome.sent, outcome


def test_sigkill_at_least_once_loses_nothing(context: ChaosContext) -> None:
    outcome = sigkill("at_least_once", kills=2)(context, EVENTS)

    _assert_complete(outcome)


def test_sigkill_exactly_once_loses_and_repeats_nothing(context: ChaosContext) -> None:
    outcome = sigkill("exactly_once", kills=2)(context, EVENTS)

    _assert_complete(outcome)
    if outcome.duplicates and not broker_hides_aborted_transactions(context.bootstrap):
        pytest.xfail(
            f"{outcome.duplicates} duplicates: this broker shows read_committed readers the "
            f"records of the transaction the SIGKILL left open, which Kafka hides"
        )
    assert outcome.duplicates == 0, outcome


def test_embedded_broker_still_shows_aborted_records(context: ChaosContext) -> None:
    # Tansu 0.6.0 ignores isolation.level=read_committed. When a new version hides aborted
    # records, this fails, and the exactly-once test above can no longer be an expected failure.
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("only the embedded broker is known to show aborted records")

    assert not broker_hides_aborted_transactions(context.bootstrap)


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_workers_joining_and_leaving_repeat_nothing(context: ChaosContext, guarantee: str) -> None:
    outcome = rebalance(guarantee)(context, EVENTS)

    _assert_complete(outcome)
    assert outcome.duplicates == 0, outcome


def test_sigterm_mid_stream_repeats_nothing(context: ChaosContext) -> None:
    outcome = graceful_shutdown(context, EVENTS, stops=2)

    _assert_complete(outcome)
    assert outcome.duplicates == 0, outcome
    assert "exit codes [0, 0]" in outcome.notes[0]


def test_broker_outage_loses_nothing(context: ChaosContext) -> None:
    outcome = broker_outage(context, EVENTS, outage_s=10.0)

    _assert_complete(outcome)
    assert outcome.notes == [
        "/readyz while the broker was away at start: 503, during the 10 s outage: 503, after: 200",
        "worker exit code 0",
    ]


def test_slow_model_keeps_its_partitions(context: ChaosContext) -> None:
    outcome = slow_model(context, 300)

    assert outcome.lost == 0, outcome
    assert outcome.duplicates == 0, outcome
    assert "partitions lost 0 times" in outcome.notes[0], outcome.notes


def test_poison_mix_dead_lettered_rest_scored(
    context: ChaosContext,
) -> None:
    outcome = poison_mix(context, EVENTS)

    _assert_complete(outcome)
    assert outcome.duplicates == 0, outcome
    assert outcome.dead_lettered == (EVENTS - 1) // 5 + 1, outcome
    assert outcome.results_unique == outcome.sent - outcome.dead_lettered
