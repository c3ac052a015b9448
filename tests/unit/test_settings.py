"""Settings: precedence of sources and the errors a user sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from streamscore.errors import ConfigError
from streamscore.settings import DEFAULT_CONFIG_FILE, Settings, load_settings


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_yaml_matches_builtin_defaults() -> None:
    from_file = load_settings(DEFAULT_CONFIG_FILE)

    assert from_file == Settings()


def test_default_yaml_lists_every_setting() -> None:
    data = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text(encoding="utf-8"))

    assert set(data) == set(Settings.model_fields)
    for section, value in data.items():
        model = Settings.model_fields[section].annotation
        if isinstance(value, dict) and hasattr(model, "model_fields"):
            assert set(value) == set(model.model_fields), section


def test_load_settings_file_overrides_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, "worker:\n  batch_size: 64\n")

    settings = load_settings(path)

    assert settings.worker.batch_size == 64
    assert settings.worker.batch_wait_ms == Settings().worker.batch_wait_ms


def test_load_settings_environment_overrides_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "worker:\n  batch_size: 64\n  batch_wait_ms: 20\n")
    monkeypatch.setenv("STREAMSCORE_WORKER__BATCH_SIZE", "128")

    settings = load_settings(path)

    assert settings.worker.batch_size == 128
    assert settings.worker.batch_wait_ms == 20


def test_load_settings_caller_overrides_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMSCORE_WORKER__BATCH_SIZE", "128")

    settings = load_settings(_write(tmp_path, ""), worker={"batch_size": 7})

    assert settings.worker.batch_size == 7


def test_load_settings_config_env_var_picks_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMSCORE_CONFIG", str(_write(tmp_path, "topics:\n  input: orders\n")))

    assert load_settings().topics.input == "orders"


def test_load_settings_unknown_key_names_it(tmp_path: Path) -> None:
    path = _write(tmp_path, "worker:\n  batch_sise: 64\n")

    with pytest.raises(ConfigError, match=r"^worker\.batch_sise: unknown setting$"):
        load_settings(path)


def test_load_settings_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    path = _write(tmp_path, "worker:\n  batch_size: lots\n")

    with pytest.raises(ConfigError, match=r"^worker\.batch_size: .*integer.*\(got 'lots'\)$"):
        load_settings(path)


def test_load_settings_bad_environment_value_names_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMSCORE_METRICS__PORT", "http")

    with pytest.raises(ConfigError, match="STREAMSCORE_METRICS__PORT"):
        load_settings(_write(tmp_path, ""))


def test_load_settings_malformed_yaml_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "worker:\n  batch_size: [1, 2\n")

    with pytest.raises(ConfigError, match=r"malformed YAML at line \d+"):
        load_settings(path)


def test_load_settings_duplicate_key_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "worker:\n  batch_size: 1\n  batch_size: 2\n")

    with pytest.raises(ConfigError, match=r"duplicate key 'batch_size' at line 3"):
        load_settings(path)


def test_load_settings_missing_file_names_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nowhere.yaml"):
        load_settings(tmp_path / "nowhere.yaml")


def test_load_settings_non_mapping_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping of settings, got list"):
        load_settings(_write(tmp_path, "- 1\n- 2\n"))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("model:\n  uri: runs:/abc/model\n", "model.uri"),
        ("kafka:\n  bootstrap_servers: localhost\n", "kafka.bootstrap_servers"),
        ("worker:\n  batch_size: 0\n", "worker.batch_size"),
        ("training:\n  test_size: 1.5\n", "training.test_size"),
        ("logging:\n  level: LOUD\n", "logging.level"),
        ("worker:\n  processing_guarantee: twice\n", "worker.processing_guarantee"),
        ("worker:\n  transactional_id: ''\n", "worker.transactional_id"),
        ("worker:\n  transactional_id: a b\n", "worker.transactional_id"),
        ("worker:\n  shutdown_timeout_s: .inf\n", "worker.shutdown_timeout_s"),
        ("worker:\n  retry_backoff_max_s: 0.5\n", "worker"),
    ],
)
def test_load_settings_invalid_value_names_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}: "):
        load_settings(_write(tmp_path, text))


def test_settings_are_frozen() -> None:
    settings = Settings()

    with pytest.raises(ValueError, match="frozen"):
        settings.worker.batch_size = 3  # type: ignore[misc]


def test_load_settings_non_utf8_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_bytes(b"\xff\xfe bad\n")

    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_settings(path)


def test_load_settings_list_from_environment_needs_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMSCORE_TRAINING__COLUMNS", "label,message")

    with pytest.raises(ConfigError, match="training.columns: .*list.*must be JSON"):
        load_settings(_write(tmp_path, ""))


def test_load_settings_list_from_environment_as_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMSCORE_TRAINING__COLUMNS", '["kind", "text"]')

    assert load_settings(_write(tmp_path, "")).training.columns == ["kind", "text"]


def test_load_settings_log_level_any_case(tmp_path: Path) -> None:
    assert load_settings(_write(tmp_path, "logging:\n  level: debug\n")).logging.level == "DEBUG"


@pytest.mark.parametrize(
    ("training", "expected"),
    [
        (
            {"pipeline": "tabular"},
            "the tabular pipeline needs numeric_columns or categorical_columns, got neither",
        ),
        (
            {"pipeline": "tabular", "numeric_columns": ["a"], "categorical_columns": ["a"]},
            "column 'a' is named twice among the feature columns",
        ),
        ({"text_column": "label"}, "label column 'label' is also a feature column"),
    ],
)
def test_training_inconsistent_columns_raise(
    tmp_path: Path, training: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError, match=rf"^training: {expected}$"):
        load_settings(_write(tmp_path, ""), training=training)


def test_training_unknown_metric_minimum_raises(tmp_path: Path) -> None:
    path = _write(tmp_path, "training:\n  min_metrics: {f2: 0.5}\n")

    with pytest.raises(ConfigError, match=r"^training\.min_metrics\.f2\.\[key\]: Input should be"):
        load_settings(path)


def test_training_metric_minimum_above_one_raises(tmp_path: Path) -> None:
    path = _write(tmp_path, "training:\n  min_metrics: {recall: 1.5}\n")

    with pytest.raises(ConfigError, match=r"^training\.min_metrics\.recall: Input should be less"):
        load_settings(path)


def test_tabular_config_loads_feature_columns() -> None:
    settings = load_settings(DEFAULT_CONFIG_FILE.parent / "tabular.yaml")

    assert settings.training.pipeline == "tabular"
    assert settings.training.columns is None
    assert settings.training.feature_columns == ["amount", "hour", "country", "channel"]
    assert settings.model.uri == "models:/transactions@champion"


def test_tabular_config_lists_every_setting() -> None:
    default = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text(encoding="utf-8"))
    tabular = yaml.safe_load((DEFAULT_CONFIG_FILE.parent / "tabular.yaml").read_text("utf-8"))

    assert set(tabular) == set(default)
    for section, value in default.items():
        if isinstance(value, dict):
            assert set(tabular[section]) == set(value), section
