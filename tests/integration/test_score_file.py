"""`streamscore score-file`: the worker's scorer on a file, predicting as streaming does."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from stream.scorer import Scorer
from streamscore.cli import cli
from streamscore.events import encode_event
from tests.integration.helpers import produce, read_topic, running_worker

DATA = Path(__file__).resolve().parents[2] / "data" / "sms_spam_collection.tsv"


@pytest.fixture
def registry_env(monkeypatch: pytest.MonkeyPatch, tracking_uri: str, registered_model: str) -> str:
    monkeypatch.setenv("STREAMSCORE_MODEL__TRACKING_URI", tracking_uri)
    monkeypatch.setenv("STREAMSCORE_MODEL__URI", registered_model)
    return registered_model


def _messages(count: int) -> dict[str, str]:
    lines = DATA.read_text(encoding="utf-8").splitlines()[3_000 : 3_000 + count]
    return {f"sms-{i}": line.split("\t", 1)[1] for i, line in enumerate(lines)}


def test_score_file_matches_streaming(
    settings_factory, registry_env: str, tracking_uri: str, tmp_path: Path
) -> None:
    messages = _messages(300)
    source = tmp_path / "messages.jsonl"
    source.write_bytes(
        b"".join(
            orjson.dumps({"event_id": event_id, "message": message}) + b"\n"
            for event_id, message in messages.items()
        )
    )
    settings = settings_factory(model={"uri": registry_env})
    produce(
        settings,
        [
            (event_id.encode(), encode_event(event_id, {"message": message}))
            for event_id, message in messages.items()
        ],
    )

    result = CliRunner().invoke(cli, ["score-file", str(source), str(tmp_path / "out.jsonl")])
    scorer = Scorer.from_registry(registry_env, tracking_uri, 100_000)
    with running_worker(settings, scorer):
        records = read_topic(settings, settings.topics.output, expected=len(messages))

    assert result.exit_code == 0, result.output
    assert "scored 300 rows" in result.output
    assert "score-file: 300/300 events in" in result.output
    batch = {
        row["event_id"]: (row["label"], row["probability"])
        for row in map(orjson.loads, (tmp_path / "out.jsonl").read_bytes().splitlines())
    }
    streamed = {
        row["event_id"]: (row["label"], row["probability"])
        for row in (orjson.loads(record.value) for record in records)
    }
    assert len(batch) == 300
    assert batch == streamed


def test_score_file_rejects_bad_rows_with_reason(registry_env: str, tmp_path: Path) -> None:
    source = tmp_path / "mixed.jsonl"
    source.write_text(
        '{"message": "free prize"}\n{"message": 7}\n{"text": "no message"}\n{"message": "hi"}\n',
        encoding="utf-8",
    )
    output = tmp_path / "scores.jsonl"

    result = CliRunner().invoke(cli, ["score-file", str(source), str(output)])

    assert result.exit_code == 0, result.output
    assert "2 rejected" in result.output
    scored = [orjson.loads(line) for line in output.read_bytes().splitlines()]
    rejected = [
        orjson.loads(line)
        for line in (tmp_path / "scores.rejected.jsonl").read_bytes().splitlines()
    ]
    assert [row["event_id"] for row in scored] == ["row-1", "row-4"]
    assert [(row["row"], row["reason"]) for row in rejected] == [
        (2, "wrong_type"),
        (3, "missing_field"),
    ]


def test_score_file_missing_input_one_line_error(registry_env: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["score-file", str(tmp_path / "absent.tsv"), str(tmp_path / "out.jsonl")]
    )

    assert result.exit_code == 2
    assert "absent.tsv' does not exist" in result.output
