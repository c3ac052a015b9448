"""The worker as users run it: a process serving a registered model, stopped by SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pandas as pd
import pytest
import yaml

from streamscore.events import encode_event
from streamscore.settings import Settings
from tests.integration.helpers import produce, read_topic

DATA = Path(__file__).resolve().parents[2] / "data" / "sms_spam_collection.tsv"


def _sms_events(start: int, stop: int) -> tuple[list[tuple[bytes, bytes]], dict[str, str]]:
    lines = DATA.read_text(encoding="utf-8").splitlines()[start:stop]
    messages = {f"sms-{start + i}": line.split("\t", 1)[1] for i, line in enumerate(lines)}
    events = [
        (event_id.encode(), encode_event(event_id, {"message": message}))
        for event_id, message in messages.items()
    ]
    return events, messages


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[[Settings], subprocess.Popen[bytes]]]:
    """Return a function that starts `python -m stream` with the given settings."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(settings: Settings) -> subprocess.Popen[bytes]:
        config = tmp_path / f"worker-{len(processes)}.yaml"
        config.write_text(yaml.safe_dump(settings.model_dump(mode="json")), encoding="utf-8")
        log = (tmp_path / f"worker-{len(processes)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "stream", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


def test_worker_process_scores_like_the_registered_model(
    settings_factory, registered_model: str, start_worker, tracking_uri: str
) -> None:
    import mlflow

    settings = settings_factory(model={"uri": registered_model})
    events, messages = _sms_events(2_000, 2_400)
    produce(settings, events)

    worker = start_worker(settings)
    records = read_topic(settings, settings.topics.output, expected=len(events), settle_s=1.0)
    exit_code = _stop(worker)

    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.sklearn.load_model(registered_model)
    offline = model.predict(pd.DataFrame({"message": list(messages.values())}))
    expected = dict(zip(messages, offline, strict=True))
    results = {orjson.loads(r.value)["event_id"]: orjson.loads(r.value) for r in records}
    assert exit_code == 0
    assert len(records) == len(events)
    assert {event_id: result["label"] for event_id, result in results.items()} == expected
    assert {result["model_name"] for result in results.values()} == {"sms-spam-test"}
    assert {result["model_version"] for result in results.values()} == {"1"}


def test_worker_restarted_after_sigterm_rescores_nothing(
    settings_factory, registered_model: str, start_worker
) -> None:
    settings = settings_factory(model={"uri": registered_model})
    first, _ = _sms_events(0, 300)
    second, _ = _sms_events(300, 450)
    produce(settings, first)

    worker = start_worker(settings)
    read_topic(settings, settings.topics.output, expected=len(first))
    first_exit_code = _stop(worker)
    produce(settings, second)
    worker = start_worker(settings)
    records = read_topic(
        settings, settings.topics.output, expected=len(first) + len(second), settle_s=3.0
    )
    second_exit_code = _stop(worker)

    counts = Counter(orjson.loads(record.value)["event_id"] for record in records)
    duplicated = {event_id: n for event_id, n in counts.items() if n > 1}
    assert first_exit_code == 0
    assert second_exit_code == 0
    assert duplicated == {}
    assert set(counts) == {key.decode() for key, _ in first + second}
