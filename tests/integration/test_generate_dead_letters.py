"""`publish --generate` through a running worker, then `dead-letters` and its `--replay`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import yaml
from click.testing import CliRunner, Result

from stream.scorer import Scorer
from streamscore.settings import Settings
from tests.integration.helpers import read_topic, running_worker

DATA_FILE = Path(__file__).resolve().parents[2] / "data" / "sms_spam_collection.tsv"
REASONS = {
    "not_utf8",
    "invalid_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "invalid_value",
    "too_large",
}


def run_cli(settings: Settings, tmp_path: Path, *args: str) -> Result:
    """Run `streamscore --config FILE ARGS`, with FILE holding these settings."""
    from streamscore.cli import cli

    config_file = tmp_path / "settings.yaml"
    config_file.write_text(yaml.safe_dump(settings.model_dump(mode="json")), encoding="utf-8")
    return CliRunner().invoke(cli, ["--config", str(config_file), *args])


@pytest.fixture
def scored_settings(
    settings_factory: Callable[..., Settings], registered_model: str, tmp_path: Path
) -> Settings:
    """Publish 14 generated events, half of them malformed, and let a worker score them."""
    settings = settings_factory(
        model={"uri": registered_model}, training={"data_path": str(DATA_FILE)}
    )
    published = run_cli(
        settings, tmp_path, "publish", "--generate", "14", "--invalid-fraction", "0.5"
    )
    assert published.exit_code == 0, published.output
    scorer = Scorer.from_registry(
        registered_model, settings.model.tracking_uri, settings.worker.max_event_bytes
    )
    with running_worker(settings, scorer):
        read_topic(settings, settings.topics.dead_letter, expected=7)
        read_topic(settings, settings.topics.output, expected=7)
    return settings


def test_generate_exercises_every_reason(scored_settings: Settings, tmp_path: Path) -> None:
    results = read_topic(scored_settings, scored_settings.topics.output, expected=7)
    messages = {orjson.loads(record.value or b"")["event_id"]: record for record in results}
    training_texts = DATA_FILE.read_text(encoding="utf-8")

    listed = run_cli(scored_settings, tmp_path, "dead-letters", "--json")
    records = [orjson.loads(line) for line in listed.stdout.splitlines()]

    assert len(messages) == 7
    assert listed.exit_code == 0, listed.output
    assert {record["reason"] for record in records} == REASONS
    assert all(record["source_topic"] == scored_settings.topics.input for record in records)
    assert listed.stderr.strip().splitlines()[-1].startswith("7 dead-letter records: ")
    events = read_topic(scored_settings, scored_settings.topics.input, expected=14)
    valid = [orjson.loads(r.value or b"") for r in events if r.key and r.key.decode() in messages]
    assert all(event["message"] in training_texts for event in valid)


def test_dead_letters_table_shows_reasons(scored_settings: Settings, tmp_path: Path) -> None:
    listed = run_cli(scored_settings, tmp_path, "dead-letters", "--table", "--reason", "not_object")
    lines = listed.stdout.splitlines()

    assert listed.exit_code == 0, listed.output
    assert lines[0].split() == ["position", "reason", "key", "message"]
    assert len(lines) == 2
    assert "not_object" in lines[1]
    assert "expected a JSON object, got an array" in lines[1]


def test_dead_letters_replay_keeps_key_and_value(scored_settings: Settings, tmp_path: Path) -> None:
    dead = read_topic(scored_settings, scored_settings.topics.dead_letter, expected=7)
    chosen = next(r for r in dead if r.headers["error.reason"] == b"wrong_type")

    replayed = run_cli(
        scored_settings, tmp_path, "dead-letters", "--replay", "--reason", "wrong_type"
    )
    events = read_topic(scored_settings, scored_settings.topics.input, expected=15)

    assert replayed.exit_code == 0, replayed.output
    assert replayed.stdout.splitlines() == [
        f"replayed {chosen.partition}:{chosen.offset} (wrong_type) to "
        f"{scored_settings.topics.input}",
        f"replayed 1 of 1 dead-letter records to {scored_settings.topics.input}",
    ]
    copies = [e for e in events if e.key == chosen.key and e.value == chosen.value]
    assert len(copies) == 2


def test_dead_letters_replay_without_selection_exits_2(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    result = run_cli(settings_factory(), tmp_path, "dead-letters", "--replay")

    assert result.exit_code == 2
    assert "--replay needs a selection: --reason R, --offset P:O or --all" in result.stderr
