"""Integration tests of the quality gate, alias moves and the tabular model, on real stores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner, Result
from mlflow import MlflowClient

from streamscore.cli import cli
from streamscore.settings import load_settings
from tests.integration.trainer_helpers import (
    TABULAR_CONFIG,
    TRANSACTIONS_DATA,
    make_training_settings,
    tracking_uri_in,
    use_cli_environment,
    write_sms_subset,
)
from trainer.aliases import history_tag
from trainer.train import train


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def _alias_target(directory: Path, name: str, alias: str = "champion") -> int:
    client = MlflowClient(tracking_uri_in(directory))
    return int(client.get_model_version_by_alias(name, alias).version)


def test_gate_rejects_worse_model_keeps_alias(tmp_path: Path) -> None:
    first = train(make_training_settings(tmp_path))
    names = {"experiment": first.model_name, "registered_model": first.model_name}
    weak_settings = make_training_settings(tmp_path, n_estimators=1, max_depth=1, **names)

    weak = train(weak_settings)

    run = MlflowClient(weak_settings.model.tracking_uri).get_run(weak.run_id)
    assert weak.metrics["f1"] < first.metrics["f1"]
    assert weak.alias_moved is False
    assert _alias_target(tmp_path, first.model_name) == first.version
    assert run.data.tags["gate.decision"] == "rejected"
    assert run.data.tags["gate.champion_version"] == str(first.version)
    assert f"< champion {first.metrics['f1']:.4f}" in run.data.tags["gate.reason"]
    assert run.data.metrics["champion_f1"] == pytest.approx(first.metrics["f1"])
    assert weak.gate.describe().endswith(
        f"-> rejected: f1 {weak.metrics['f1']:.4f} < champion {first.metrics['f1']:.4f}"
    )


def test_gate_promotes_equal_model(tmp_path: Path) -> None:
    first = train(make_training_settings(tmp_path))
    names = {"experiment": first.model_name, "registered_model": first.model_name}

    second = train(make_training_settings(tmp_path, **names))

    run = MlflowClient(tracking_uri_in(tmp_path)).get_run(second.run_id)
    assert second.metrics["f1"] == first.metrics["f1"]
    assert second.alias_moved is True
    assert _alias_target(tmp_path, first.model_name) == second.version
    assert run.data.tags["gate.decision"] == "promoted"
    assert run.data.tags["gate.reason"] == "passed"
    assert second.gate.describe() == (
        f"gate: f1 {second.metrics['f1']:.4f} vs champion version {first.version} "
        f"f1 {first.metrics['f1']:.4f} -> promoted"
    )


def test_gate_rejects_champion_with_other_inputs(tmp_path: Path) -> None:
    text = train(make_training_settings(tmp_path))
    tabular = load_settings(TABULAR_CONFIG).training.model_dump()
    tabular.update(
        data_path=TRANSACTIONS_DATA,
        experiment=text.model_name,
        registered_model=text.model_name,
        n_estimators=5,
        min_metrics={"f1": 0.0},
    )

    second = train(make_training_settings(tmp_path, **tabular))

    assert second.alias_moved is False
    assert _alias_target(tmp_path, text.model_name) == text.version
    assert "(inputs [message string], this version [amount double" in second.gate.describe()
    assert "is not comparable; move the alias with `streamscore promote`" in (
        second.gate.describe()
    )


def test_train_logs_evaluation_figures(tmp_path: Path) -> None:
    result = train(make_training_settings(tmp_path))

    artifacts = MlflowClient(tracking_uri_in(tmp_path)).list_artifacts(result.run_id)

    paths = {artifact.path for artifact in artifacts}
    assert {"confusion_matrix.png", "roc_curve.png"} <= paths
    for path in ("confusion_matrix.png", "roc_curve.png"):
        local = mlflow.artifacts.download_artifacts(
            run_id=result.run_id, artifact_path=path, tracking_uri=tracking_uri_in(tmp_path)
        )
        assert Path(local).read_bytes().startswith(b"\x89PNG")


@pytest.fixture(scope="module")
def two_version_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Train two equal versions through the CLI once, so the alias history is [1, 2]."""
    directory = tmp_path_factory.mktemp("two-versions")
    with pytest.MonkeyPatch.context() as monkeypatch:
        name = use_cli_environment(monkeypatch, directory)
        data_path = str(write_sms_subset(directory))
        for _ in range(2):
            result = _invoke("train", "--data", data_path, "--min-metric", "f1=0")
            assert result.exit_code == 0, result.output
    return directory, name


@pytest.fixture
def two_versions(
    two_version_store: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Copy the two-version registry into `tmp_path`, point the CLI at it, return the model.

    Moving an alias reads and writes only the database, so the copy needs no artifacts.
    """
    directory, name = two_version_store
    (tmp_path / "store").mkdir()
    shutil.copyfile(directory / "store" / "mlflow.db", tmp_path / "store" / "mlflow.db")
    return use_cli_environment(monkeypatch, tmp_path, name)


def test_cli_train_prints_champion_comparison(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_cli_environment(monkeypatch, tmp_path)
    data_path = str(write_sms_subset(tmp_path))
    assert _invoke("train", "--data", data_path, "--min-metric", "f1=0").exit_code == 0
    monkeypatch.setenv("STREAMSCORE_TRAINING__N_ESTIMATORS", "1")
    monkeypatch.setenv("STREAMSCORE_TRAINING__MAX_DEPTH", "1")

    result = _invoke("train", "--data", data_path, "--min-metric", "f1=0")

    lines = result.stdout.splitlines()
    assert result.exit_code == 0, result.output
    assert lines[-2].startswith("gate: f1 ")
    assert " vs champion version 1 f1 " in lines[-2]
    assert " -> rejected: f1 " in lines[-2]
    assert lines[-1] == "alias champion: stays on version 1"


def test_cli_promote_moves_alias(two_versions: str, tmp_path: Path) -> None:
    result = _invoke("promote", "--version", "1")

    assert result.exit_code == 0, result.output
    assert result.stdout == f"model {two_versions} alias champion: version 2 -> version 1\n"
    assert _alias_target(tmp_path, two_versions) == 1


def test_cli_promote_records_history(two_versions: str, tmp_path: Path) -> None:
    _invoke("promote", "--version", "1")

    model = MlflowClient(tracking_uri_in(tmp_path)).get_registered_model(two_versions)

    assert json.loads(model.tags[history_tag("champion")]) == [1, 2, 1]


def test_cli_rollback_walks_back_history(two_versions: str, tmp_path: Path) -> None:
    _invoke("promote", "--version", "1")

    first = _invoke("rollback")
    second = _invoke("rollback")
    third = _invoke("rollback")

    assert first.stdout == f"model {two_versions} alias champion: version 1 -> version 2\n"
    assert second.stdout == f"model {two_versions} alias champion: version 2 -> version 1\n"
    assert _alias_target(tmp_path, two_versions) == 1
    assert third.exit_code == 1
    assert third.stderr == (
        f"error: alias champion of model {two_versions} has no earlier version to roll back "
        f"to: use `streamscore promote --version N` to choose one\n"
    )


def test_cli_promote_unknown_version_exits_one(two_versions: str) -> None:
    result = _invoke("promote", "--version", "9")

    assert result.exit_code == 1
    assert result.stderr == (
        f"error: model {two_versions} has no version 9: choose an existing version, "
        f"the latest is 2\n"
    )


def test_cli_promote_unknown_model_exits_one(two_versions: str) -> None:
    result = _invoke("promote", "--version", "1", "--model", "absent")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: registered model 'absent' not found: run `streamscore")
    assert len(result.stderr.splitlines()) == 1


def test_cli_rollback_missing_store_exits_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_cli_environment(monkeypatch, tmp_path)

    result = _invoke("rollback")

    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: MLflow store {tmp_path / 'store' / 'mlflow.db'} ")
    assert not (tmp_path / "store").exists()


def test_cli_promote_invalid_config_exits_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_cli_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("STREAMSCORE_TRAINING__GATE_METRIC", "f2")

    result = _invoke("promote", "--version", "1")

    assert result.exit_code == 2
    assert "training.gate_metric" in result.stderr


def test_tabular_config_registers_typed_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = use_cli_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("STREAMSCORE_TRAINING__DATA_PATH", str(TRANSACTIONS_DATA))

    result = _invoke("--config", str(TABULAR_CONFIG), "train")

    mlflow.set_tracking_uri(tracking_uri_in(tmp_path))
    info = mlflow.models.get_model_info(f"models:/{name}@champion")
    assert result.exit_code == 0, result.output
    assert info.signature is not None
    assert info.signature.inputs.to_dict() == [
        {"type": "double", "name": "amount", "required": True},
        {"type": "double", "name": "hour", "required": True},
        {"type": "string", "name": "country", "required": True},
        {"type": "string", "name": "channel", "required": True},
    ]
    assert "gate: f1 " in result.stdout
